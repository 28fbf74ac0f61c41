//! The serve loop: bytes from the channel through the protocol decoder to
//! the dispatcher, and answers back out.

use std::io;
use std::time::Duration;

use crate::channel::{self, Channel, Connection};
use crate::dispatch::{Answer, Dispatcher};
use crate::protocol::{self, Decoder, Inbound};

/// Large enough that a 4 MiB write request arrives in a few reads.
const READ_SIZE: usize = 256 << 10;
/// Answers to pipelined requests are written together, up to this much.
const FLUSH_AT: usize = 1 << 20;
const OUT_KEEP: usize = 8 << 20;
/// Bounds on the pause after a port session that read nothing. While the
/// host is away the agent does not wake at all ([`channel::Port::connect`]).
const IDLE_BACKOFF_MIN: Duration = Duration::from_millis(10);
const IDLE_BACKOFF_MAX: Duration = Duration::from_millis(200);

pub struct Agent {
    dispatcher: Dispatcher,
    decoder: Decoder,
    inbound: Vec<Inbound>,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Agent {
    pub fn new(dispatcher: Dispatcher) -> Agent {
        Agent {
            dispatcher,
            decoder: Decoder::new(),
            inbound: Vec::new(),
            out: Vec::new(),
            buf: vec![0; READ_SIZE],
        }
    }

    /// Serves the channel until an unrecoverable channel error.
    pub async fn run(&mut self, channel: Channel) -> anyhow::Result<()> {
        match channel {
            Channel::Port(port) => {
                let mut backoff = Duration::ZERO;
                loop {
                    let connection = port.connect().await?;
                    tracing::debug!("host side of the port is open");
                    let served = self.serve(&connection).await;
                    tracing::debug!("host side of the port closed");
                    // A host that connects and leaves without a word is
                    // normal; a driver that kept reporting an open host with
                    // nothing to read would make this loop spin, so empty
                    // sessions in a row back off.
                    if served {
                        backoff = Duration::ZERO;
                    } else {
                        backoff = (backoff * 2).clamp(IDLE_BACKOFF_MIN, IDLE_BACKOFF_MAX);
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
            Channel::Listener(listener) => loop {
                let client = match channel::accept(&listener).await {
                    Ok(client) => client,
                    // Out of descriptors or memory, or a client gone before
                    // it was accepted: none of these should stop the agent.
                    Err(e) => {
                        tracing::warn!("error accepting a client: {e}");
                        tokio::time::sleep(IDLE_BACKOFF_MAX).await;
                        continue;
                    }
                };
                tracing::debug!("client connected");
                self.serve(&client).await;
                tracing::debug!("client disconnected");
            },
        }
    }

    /// Serves one connection until it hangs up; returns whether it read
    /// anything. A partial request does not carry over to the next client
    /// (qemu-ga's does, so its clients must resynchronise with 0xFF; ours
    /// may, but need not).
    async fn serve(&mut self, connection: &Connection) -> bool {
        let mut served = false;
        loop {
            let read = match connection.read(&mut self.buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    // A hung-up port reports errors such as EIO: not news.
                    tracing::debug!("error reading channel: {e}");
                    break;
                }
            };
            served = true;
            let bytes = self.buf.get(..read).unwrap_or_default();
            self.decoder.feed(bytes, &mut self.inbound);
            if let Err(e) = self.answer_all(connection).await {
                tracing::warn!("error sending response: {e}");
                break;
            }
        }
        self.decoder = Decoder::new();
        self.inbound.clear();
        self.out.clear();
        self.dispatcher.session_ended();
        served
    }

    async fn answer_all(&mut self, connection: &Connection) -> io::Result<()> {
        let inbound = std::mem::take(&mut self.inbound);
        for event in &inbound {
            self.answer(event);
            if self.out.len() >= FLUSH_AT {
                self.flush(connection).await?;
            }
        }
        self.inbound = inbound;
        self.inbound.clear();
        let flushed = self.flush(connection).await;
        // Deferred work may begin once the first answers are out.
        self.dispatcher.start_loading();
        flushed
    }

    fn answer(&mut self, event: &Inbound) {
        let request = match event {
            Inbound::Request(request) => request,
            Inbound::Error(error) => {
                protocol::write_error(
                    &mut self.out,
                    protocol::ErrorClass::GenericError,
                    &error.desc,
                    error.id.as_ref(),
                );
                return;
            }
        };
        let id = request.id.as_ref();
        match self.dispatcher.dispatch(request) {
            Answer::Return { value, delimited } => {
                if delimited {
                    self.out.push(protocol::DELIMITER);
                }
                protocol::write_return(&mut self.out, &value, id);
            }
            Answer::ReturnStaged { object, member } => {
                protocol::write_return_with_staged(
                    &mut self.out,
                    &object,
                    &member,
                    self.dispatcher.staged(),
                    id,
                );
                self.dispatcher.release_staged();
            }
            Answer::Error { class, desc } => protocol::write_error(&mut self.out, class, &desc, id),
            Answer::Nothing => {}
        }
    }

    async fn flush(&mut self, connection: &Connection) -> io::Result<()> {
        let result = connection.write_all(&self.out).await;
        self.out.clear();
        // Keep the buffer for the next answer (a 4 MiB read is a 5.6 MB
        // answer; reallocating it each time costs page faults), but not the
        // one of a rare huge answer for the agent's whole life.
        if self.out.capacity() > OUT_KEEP {
            self.out = Vec::new();
        }
        result
    }
}

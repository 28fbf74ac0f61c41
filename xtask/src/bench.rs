//! `cargo xtask bench [--quick] [--reps N]`: sandga and Debian's qemu-ga side
//! by side, over a unix socket, on this machine.
//!
//! Each repetition starts a fresh sandga, then a fresh qemu-ga (A B A B …),
//! each in its own temporary directory, and measures start-up, round trips,
//! file throughput, memory and CPU. The table reports medians across
//! repetitions and is also written to `BENCHMARKS.md`.
//!
//! Only harmless commands are sent: guest-sync, guest-ping, guest-get-time,
//! guest-get-vcpus, guest-network-get-interfaces and guest-file-* on files
//! inside the benchmark's own temporary directory.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use memchr::{memchr, memmem};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

/// Where BENCHMARKS.md's hand-written analysis starts; the benchmark
/// rewrites everything above it.
const ANALYSIS_MARKER: &str = "<!-- analysis: kept by cargo xtask bench -->";
const QEMU_GA: &str = "/usr/sbin/qemu-ga";
/// Every socket read and write; a hung agent fails the run.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const START_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off between connection attempts while an agent starts.
const CONNECT_BACKOFF: Duration = Duration::from_micros(100);
const MIB: usize = 1 << 20;
const KIB: usize = 1 << 10;
const GIB: f64 = (1u64 << 30) as f64;
const PING: &[u8] = br#"{"execute":"guest-ping"}"#;
const GET_TIME: &[u8] = br#"{"execute":"guest-get-time"}"#;
const GET_VCPUS: &[u8] = br#"{"execute":"guest-get-vcpus"}"#;
const GET_INTERFACES: &[u8] = br#"{"execute":"guest-network-get-interfaces"}"#;

/// How much work one run does.
struct Sizes {
    reps: usize,
    file_bytes: usize,
    ping_warmup: usize,
    pings: usize,
    pipelined: usize,
    in_flight: usize,
    get_time_warmup: usize,
    get_times: usize,
    write_chunk: usize,
    read_counts: [usize; 2],
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            reps: 5,
            file_bytes: 256 * MIB,
            ping_warmup: 1_000,
            pings: 20_000,
            pipelined: 20_000,
            in_flight: 100,
            get_time_warmup: 100,
            get_times: 2_000,
            write_chunk: 4 * MIB,
            read_counts: [4 * MIB, 64 * KIB],
        }
    }

    fn quick() -> Sizes {
        Sizes {
            reps: 1,
            file_bytes: 16 * MIB,
            ping_warmup: 100,
            pings: 2_000,
            pipelined: 2_000,
            get_time_warmup: 20,
            get_times: 200,
            ..Sizes::full()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sandga,
    QemuGa,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sandga => "sandga",
            Kind::QemuGa => "qemu-ga",
        }
    }
}

const AGENTS: [Kind; 2] = [Kind::Sandga, Kind::QemuGa];

#[derive(Clone, Copy)]
enum Unit {
    Ms,
    Us,
    PerSec,
    MbPerSec,
    Kib,
    Bytes,
}

#[derive(Clone, Copy)]
enum Target {
    /// sandga/qemu-ga must be at most this.
    AtMost(f64),
    /// sandga/qemu-ga must be at least this.
    AtLeast(f64),
    /// No explicit target; the ratio is compared with this for information.
    Informal(f64),
    Report,
}

struct Metric {
    label: &'static str,
    unit: Unit,
    target: Target,
}

// Indices into `METRICS` and into each run's values.
const STARTUP: usize = 0;
const RSS_START: usize = 1;
const PING_MEDIAN: usize = 2;
const PING_P99: usize = 3;
const PING_RATE: usize = 4;
const GET_TIME_MEDIAN: usize = 5;
const GET_VCPUS_MEDIAN: usize = 6;
const NET_MEDIAN: usize = 7;
const READ_BIG: usize = 8;
const READ_SMALL: usize = 9;
const WRITE: usize = 10;
const HWM_READ: usize = 11;
const HWM_END: usize = 12;
const CPU_PING: usize = 13;
const CPU_GIB: usize = 14;
const BINARY: usize = 15;
const N_METRICS: usize = 16;

const METRICS: [Metric; N_METRICS] = [
    Metric {
        label: "start-up (spawn to first guest-sync answer)",
        unit: Unit::Ms,
        target: Target::AtMost(1.5),
    },
    Metric {
        label: "RSS after start-up (VmRSS)",
        unit: Unit::Kib,
        target: Target::AtMost(1.5),
    },
    Metric {
        label: "guest-ping round trip, median",
        unit: Unit::Us,
        target: Target::AtMost(0.8),
    },
    Metric {
        label: "guest-ping round trip, p99",
        unit: Unit::Us,
        target: Target::AtMost(1.0),
    },
    Metric {
        label: "guest-ping throughput, 100 in flight",
        unit: Unit::PerSec,
        target: Target::Informal(1.0),
    },
    Metric {
        label: "guest-get-time round trip, median (component)",
        unit: Unit::Us,
        target: Target::AtMost(1.0),
    },
    Metric {
        label: "guest-get-vcpus round trip, median (component)",
        unit: Unit::Us,
        target: Target::AtMost(1.0),
    },
    Metric {
        label: "guest-network-get-interfaces round trip, median (component)",
        unit: Unit::Us,
        target: Target::AtMost(1.0),
    },
    Metric {
        label: "file read, count 4 MiB",
        unit: Unit::MbPerSec,
        target: Target::AtLeast(10.0),
    },
    Metric {
        label: "file read, count 64 KiB",
        unit: Unit::MbPerSec,
        target: Target::AtLeast(10.0),
    },
    Metric {
        label: "file write, 4 MiB chunks",
        unit: Unit::MbPerSec,
        target: Target::AtLeast(10.0),
    },
    Metric {
        label: "peak RSS up to the end of the 4 MiB reads (VmHWM)",
        unit: Unit::Kib,
        target: Target::AtMost(1.0),
    },
    Metric {
        label: "peak RSS, whole run (VmHWM)",
        unit: Unit::Kib,
        target: Target::Report,
    },
    Metric {
        label: "CPU per 1,000 pings (utime+stime)",
        unit: Unit::Ms,
        target: Target::AtMost(0.5),
    },
    Metric {
        label: "CPU per GiB of file data read+written",
        unit: Unit::Ms,
        target: Target::AtMost(0.5),
    },
    Metric {
        label: "daemon binary size (as installed / release, stripped)",
        unit: Unit::Bytes,
        target: Target::Report,
    },
];

pub fn bench(args: &[String]) -> Result<()> {
    let started = Instant::now();
    let mut quick = false;
    let mut reps = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--reps" => {
                let value = iter.next().context("--reps needs a number")?;
                reps = Some(parse_reps(value)?);
            }
            other => match other.strip_prefix("--reps=") {
                Some(value) => reps = Some(parse_reps(value)?),
                None => bail!("unknown bench option {other:?}: use [--quick] [--reps N]"),
            },
        }
    }
    let mut sizes = if quick { Sizes::quick() } else { Sizes::full() };
    if let Some(reps) = reps {
        sizes.reps = reps;
    }
    let mut command_line = String::from("cargo xtask bench");
    for arg in args {
        command_line.push(' ');
        command_line.push_str(arg);
    }

    let qemu_ga = Path::new(QEMU_GA);
    if !qemu_ga.is_file() {
        bail!(
            "{QEMU_GA} is missing: the benchmark compares against Debian's qemu-ga \
             (`apt-get install qemu-guest-agent`)"
        );
    }

    let root = crate::root();
    crate::build_components()?;
    crate::status(
        crate::cargo()
            .current_dir(&root)
            .args(["build", "--release", "-p", "sandga"]),
    )?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    let sandga = target_dir.join("release/sandga");
    ensure!(sandga.is_file(), "{} was not built", sandga.display());
    let policy = root.join("policies/qemu-ga-compat.toml");
    ensure!(policy.is_file(), "{} is missing", policy.display());

    let machine = Machine::probe(&sandga)?;
    let load_before = load_average();
    let work = WorkDir::create()?;
    println!(
        "bench: {} repetition(s), {} file, in {}",
        sizes.reps,
        size_text(sizes.file_bytes),
        work.0.display()
    );
    let input = Input::generate(&work.0, &sizes)?;
    // Every page touched now, so that page faults stay out of the timings.
    let mut arena = vec![0u8; arena_len(&sizes)];
    arena.fill(0x55);

    let ctx = Setup {
        sizes: &sizes,
        input: &input,
        sandga: &sandga,
        policy: &policy,
        qemu_ga,
        work: &work.0,
        clk_tck: machine.clk_tck,
    };
    let mut values: [Vec<[f64; N_METRICS]>; 2] = [Vec::new(), Vec::new()];
    let mut notes = Vec::new();
    for rep in 0..sizes.reps {
        for (slot, &kind) in AGENTS.iter().enumerate() {
            let run = run_agent(&ctx, &mut arena, kind, rep)
                .with_context(|| format!("{} (repetition {})", kind.name(), rep + 1))?;
            println!(
                "rep {}/{} {:>7}: start-up {:.1} ms, ping {:.1}/{:.1} µs, {:.0} req/s, \
                 get-time {:.1} µs, read {:.0}/{:.0} MB/s, write {:.0} MB/s",
                rep + 1,
                sizes.reps,
                kind.name(),
                run.values[STARTUP],
                run.values[PING_MEDIAN],
                run.values[PING_P99],
                run.values[PING_RATE],
                run.values[GET_TIME_MEDIAN],
                run.values[READ_BIG],
                run.values[READ_SMALL],
                run.values[WRITE],
            );
            for note in run.notes {
                println!("  note: {note}");
                notes.push(format!("{} (repetition {}): {note}", kind.name(), rep + 1));
            }
            values[slot].push(run.values);
        }
    }
    drop(arena);
    drop(input);
    drop(work);

    let elapsed = started.elapsed();
    let load = [load_before, load_average()];
    let table = table(&values);
    let footnotes = footnotes(&machine);
    println!("\n{table}\n{footnotes}");
    let report = report(
        &command_line,
        &machine,
        &sizes,
        &table,
        &footnotes,
        &values,
        &notes,
        elapsed,
        &load,
    );
    let path = root.join("BENCHMARKS.md");
    // The hand-written analysis below the marker outlives each run.
    let analysis = fs::read_to_string(&path)
        .ok()
        .and_then(|old| old.find(ANALYSIS_MARKER).map(|at| old[at..].to_string()))
        .unwrap_or_default();
    let report = if analysis.is_empty() {
        report
    } else {
        format!("{report}\n{analysis}")
    };
    fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {} ({:.0} s in all)",
        path.display(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

fn parse_reps(value: &str) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("--reps needs a positive number, not {value:?}"),
    }
}

/// A directory under the system temp dir, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> Result<WorkDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("sandga-bench.{}.{nanos}", std::process::id()));
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The pseudo-random payload: on disk once (hard-linked into each agent's
/// directory), and pre-encoded as the write requests' base64 chunks.
struct Input {
    path: PathBuf,
    len: usize,
    sha256: [u8; 32],
    chunks_b64: Vec<(usize, String)>,
}

impl Input {
    fn generate(work: &Path, sizes: &Sizes) -> Result<Input> {
        let mut data = Vec::with_capacity(sizes.file_bytes + 8);
        let mut state: u64 = 0x5EED_0F5A_4D6A;
        while data.len() < sizes.file_bytes {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            data.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        data.truncate(sizes.file_bytes);
        let path = work.join("input.bin");
        fs::write(&path, &data).with_context(|| format!("writing {}", path.display()))?;
        let sha256 = Sha256::digest(&data).into();
        let chunks_b64 = data
            .chunks(sizes.write_chunk)
            .map(|chunk| (chunk.len(), STANDARD.encode(chunk)))
            .collect();
        Ok(Input {
            path,
            len: data.len(),
            sha256,
            chunks_b64,
        })
    }
}

struct Setup<'a> {
    sizes: &'a Sizes,
    input: &'a Input,
    sandga: &'a Path,
    policy: &'a Path,
    qemu_ga: &'a Path,
    work: &'a Path,
    clk_tck: f64,
}

struct Run {
    values: [f64; N_METRICS],
    notes: Vec<String>,
}

/// One fresh agent through every phase, in its own directory (removed after).
fn run_agent(ctx: &Setup, arena: &mut [u8], kind: Kind, rep: usize) -> Result<Run> {
    let dir = ctx.work.join(format!("{}-{}", kind.name(), rep + 1));
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run_in(ctx, arena, kind, rep, &dir);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn run_in(ctx: &Setup, arena: &mut [u8], kind: Kind, rep: usize, dir: &Path) -> Result<Run> {
    let sizes = ctx.sizes;
    let input = dir.join("input.bin");
    fs::hard_link(&ctx.input.path, &input)
        .or_else(|_| fs::copy(&ctx.input.path, &input).map(|_| ()))
        .with_context(|| format!("placing {}", input.display()))?;
    let mut values = [f64::NAN; N_METRICS];
    let mut notes = Vec::new();

    let binary = match kind {
        Kind::Sandga => ctx.sandga,
        Kind::QemuGa => ctx.qemu_ga,
    };
    values[BINARY] = fs::metadata(binary)
        .with_context(|| format!("reading {}", binary.display()))?
        .len() as f64;

    let (mut agent, mut client, startup) = Agent::start(ctx, kind, dir, rep)?;
    let result = (|| -> Result<()> {
        values[STARTUP] = ms(startup);
        values[RSS_START] = agent.status_kib("VmRSS")? as f64;

        // guest-ping, sequential.
        for _ in 0..sizes.ping_warmup {
            client.call_ok(PING)?;
        }
        let cpu = agent.cpu_ticks()?;
        let mut rtts = Vec::with_capacity(sizes.pings);
        for _ in 0..sizes.pings {
            let t = Instant::now();
            client.call_ok(PING)?;
            rtts.push(t.elapsed());
        }
        let ticks = agent.cpu_ticks()?.saturating_sub(cpu);
        values[CPU_PING] = ticks as f64 * 1000.0 / ctx.clk_tck / (sizes.pings as f64 / 1000.0);
        rtts.sort_unstable();
        values[PING_MEDIAN] = us(median_duration(&rtts));
        values[PING_P99] = us(percentile(&rtts, 0.99));

        // guest-ping, `in_flight` outstanding.
        values[PING_RATE] = pipelined_pings(&mut client, sizes.pipelined, sizes.in_flight)?;

        // Commands that run in a component in sandga.
        for (request, metric) in [
            (GET_TIME, GET_TIME_MEDIAN),
            (GET_VCPUS, GET_VCPUS_MEDIAN),
            (GET_INTERFACES, NET_MEDIAN),
        ] {
            for _ in 0..sizes.get_time_warmup {
                client.call_ok(request)?;
            }
            let mut rtts = Vec::with_capacity(sizes.get_times);
            for _ in 0..sizes.get_times {
                let t = Instant::now();
                client.call_ok(request)?;
                rtts.push(t.elapsed());
            }
            rtts.sort_unstable();
            values[metric] = us(median_duration(&rtts));
        }

        // Files: read twice, write once.
        let cpu = agent.cpu_ticks()?;
        let [big, small] = sizes.read_counts;
        values[READ_BIG] = read_file(&mut client, arena, ctx.input, &input, big)?;
        values[HWM_READ] = agent.status_kib("VmHWM")? as f64;
        values[READ_SMALL] = read_file(&mut client, arena, ctx.input, &input, small)?;
        let output = dir.join("output.bin");
        values[WRITE] = write_file(&mut client, ctx.input, &output)?;
        let ticks = agent.cpu_ticks()?.saturating_sub(cpu);
        let moved = 3.0 * ctx.input.len as f64 / GIB;
        values[CPU_GIB] = ticks as f64 * 1000.0 / ctx.clk_tck / moved;
        verify_written(ctx.input, &output)?;
        fs::remove_file(&output).with_context(|| format!("removing {}", output.display()))?;

        values[HWM_END] = agent.status_kib("VmHWM")? as f64;
        Ok(())
    })();
    drop(client);
    let stopped = agent.stop();
    match (result, stopped) {
        (Err(e), _) => Err(e.context(format!("agent log:\n{}", agent.log_tail()))),
        // The measurements are complete; a slow exit (seen now and then
        // with qemu-ga 7.2) is reported, not fatal.
        (Ok(()), Err(e)) => {
            notes.push(format!("{e:#}"));
            Ok(Run { values, notes })
        }
        (Ok(()), Ok(status)) => {
            if !status.success() {
                notes.push(format!("exit status after SIGTERM: {status}"));
            }
            Ok(Run { values, notes })
        }
    }
}

fn pipelined_pings(client: &mut Client, total: usize, in_flight: usize) -> Result<f64> {
    let first = in_flight.min(total);
    let t = Instant::now();
    client.send(&PING.repeat(first))?;
    let mut sent = first;
    for _ in 0..total {
        client.recv_ok(PING)?;
        if sent < total {
            client.send(PING)?;
            sent += 1;
        }
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

/// The bytes of base64 for `count` bytes of data.
fn b64_len(count: usize) -> usize {
    count.div_ceil(3) * 4
}

/// Enough room for every answer of a read phase with any of the counts.
fn arena_len(sizes: &Sizes) -> usize {
    sizes
        .read_counts
        .iter()
        .map(|&count| (sizes.file_bytes / count + 2) * (b64_len(count) + 512))
        .max()
        .unwrap_or_default()
}

/// Reads `path` to its end with `count`; checks the payload; returns MB/s.
///
/// The answers are received straight into `arena` (allocated and touched
/// once per benchmark) and only located in the timed loop; decoding and
/// hashing come after it, so the client adds as little as possible to
/// each round trip.
fn read_file(
    client: &mut Client,
    arena: &mut [u8],
    input: &Input,
    path: &Path,
    count: usize,
) -> Result<f64> {
    let handle = open(client, path, "r")?;
    let request = format!(
        r#"{{"execute":"guest-file-read","arguments":{{"handle":{handle},"count":{count}}}}}"#
    );
    let request = request.as_bytes();
    let max_reads = input.len / count.max(1) + 16;
    let mut answers = Vec::with_capacity(max_reads);
    let mut pos = 0;
    let t = Instant::now();
    loop {
        client.send(request)?;
        let (start, end) = client.recv_into(arena, pos)?;
        pos = end;
        let line = &arena[start..end];
        let Some(answer) = FileRead::parse(line) else {
            bail!("{} answered {}", show(request), show(line).trim_end());
        };
        let done = answer.eof || answer.count == 0;
        answers.push((start, end, answer));
        if done {
            break;
        }
        ensure!(
            answers.len() < max_reads,
            "no eof after {} reads of {count} bytes",
            answers.len()
        );
    }
    let elapsed = t.elapsed();
    close(client, handle)?;

    let mut hasher = Sha256::new();
    let mut total = 0;
    let mut bytes = Vec::with_capacity(count);
    for (start, end, answer) in &answers {
        let line = &arena[*start..*end];
        // One answer per line: no newline before the last byte.
        ensure!(
            memchr(b'\n', &line[..line.len() - 1]).is_none(),
            "an answer line holds more than one answer: {}",
            show(line)
        );
        bytes.clear();
        STANDARD
            .decode_vec(&line[answer.b64.0..answer.b64.1], &mut bytes)
            .context("decoding buf-b64")?;
        ensure!(
            bytes.len() == answer.count,
            "buf-b64 holds {} bytes, count says {}",
            bytes.len(),
            answer.count
        );
        total += bytes.len();
        hasher.update(&bytes);
    }
    ensure!(
        total == input.len,
        "read {total} bytes of a {}-byte file",
        input.len
    );
    ensure!(
        <[u8; 32]>::from(hasher.finalize()) == input.sha256,
        "the bytes read (count {count}) differ from the file"
    );
    Ok(total as f64 / 1e6 / elapsed.as_secs_f64())
}

/// Writes the input to `path` in chunks (timed up to and including the
/// close); returns MB/s.
fn write_file(client: &mut Client, input: &Input, path: &Path) -> Result<f64> {
    let handle = open(client, path, "w")?;
    let requests: Vec<(usize, Vec<u8>)> = input
        .chunks_b64
        .iter()
        .map(|(len, b64)| {
            let mut request = format!(
                r#"{{"execute":"guest-file-write","arguments":{{"handle":{handle},"buf-b64":""#
            )
            .into_bytes();
            request.reserve(b64.len() + 4);
            request.extend_from_slice(b64.as_bytes());
            request.extend_from_slice(br#""}}"#);
            (*len, request)
        })
        .collect();
    let t = Instant::now();
    for (len, request) in &requests {
        client.send(request)?;
        let answer = client.recv_value(request)?;
        let written = answer.get("count").and_then(|c| c.as_u64());
        ensure!(
            written == Some(*len as u64),
            "guest-file-write of {len} bytes answered {answer}"
        );
    }
    close(client, handle)?;
    let elapsed = t.elapsed();
    Ok(input.len as f64 / 1e6 / elapsed.as_secs_f64())
}

fn verify_written(input: &Input, path: &Path) -> Result<()> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let len = std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        len == input.len as u64,
        "the written file holds {len} bytes, not {}",
        input.len
    );
    ensure!(
        <[u8; 32]>::from(hasher.finalize()) == input.sha256,
        "the written file's sha256 differs from the data sent"
    );
    Ok(())
}

fn open(client: &mut Client, path: &Path, mode: &str) -> Result<i64> {
    let path = path.to_str().context("non-UTF-8 temporary path")?;
    let request = serde_json::json!({
        "execute": "guest-file-open",
        "arguments": {"path": path, "mode": mode},
    })
    .to_string();
    let answer = client.call_value(request.as_bytes())?;
    answer
        .as_i64()
        .with_context(|| format!("{request} answered handle {answer}"))
}

fn close(client: &mut Client, handle: i64) -> Result<()> {
    let request = format!(r#"{{"execute":"guest-file-close","arguments":{{"handle":{handle}}}}}"#);
    client.call_value(request.as_bytes()).map(|_| ())
}

/// The parts of a guest-file-read answer that matter, found without parsing
/// megabytes of JSON: `b64` is the byte range of the `buf-b64` string.
struct FileRead {
    count: usize,
    eof: bool,
    b64: (usize, usize),
}

impl FileRead {
    fn parse(line: &[u8]) -> Option<FileRead> {
        const KEY: &[u8] = br#""buf-b64""#;
        let key = memmem::find(line, KEY)?;
        let head = line.get(..key)?;
        // Only a success answer has a `return` member.
        memmem::find(head, br#""return""#)?;
        let mut start = key + KEY.len();
        while matches!(line.get(start), Some(b' ' | b':')) {
            start += 1;
        }
        if line.get(start) != Some(&b'"') {
            return None;
        }
        start += 1;
        // With `count` before the string, its end is known without a scan.
        let count_in_head = member(head, br#""count""#).and_then(parse_usize);
        let end = match count_in_head {
            Some(count) if line.get(start + b64_len(count)) == Some(&b'"') => {
                start + b64_len(count)
            }
            _ => start + memchr(b'"', line.get(start..)?)?,
        };
        let tail = line.get(end + 1..)?;
        let count = match count_in_head {
            Some(count) => count,
            None => parse_usize(member(tail, br#""count""#)?)?,
        };
        let eof = match member(head, br#""eof""#).or_else(|| member(tail, br#""eof""#))? {
            b"true" => true,
            b"false" => false,
            _ => return None,
        };
        Some(FileRead {
            count,
            eof,
            b64: (start, end),
        })
    }
}

/// The text of a scalar member `name` (quoted key) in a piece of JSON.
fn member<'a>(json: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let at = memmem::find(json, name)?;
    let value = json
        .get(at + name.len()..)?
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let len = value
        .iter()
        .position(|b| matches!(b, b',' | b'}' | b' '))
        .unwrap_or(value.len());
    value.get(..len)
}

fn parse_usize(text: &[u8]) -> Option<usize> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A client connection: one JSON object per `\n`-terminated answer line.
struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    line: Vec<u8>,
}

impl Client {
    fn new(stream: UnixStream) -> Result<Client> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let reader = BufReader::with_capacity(MIB, stream.try_clone()?);
        Ok(Client {
            writer: stream,
            reader,
            line: Vec::with_capacity(64 * KIB),
        })
    }

    fn send(&mut self, request: &[u8]) -> Result<()> {
        self.writer.write_all(request).map_err(|e| {
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                anyhow::anyhow!("the agent did not take a request within {IO_TIMEOUT:?}")
            } else {
                anyhow::Error::new(e).context("sending a request")
            }
        })
    }

    fn read_line(reader: &mut BufReader<UnixStream>, line: &mut Vec<u8>) -> Result<()> {
        line.clear();
        match reader.read_until(b'\n', line) {
            Ok(_) if line.ends_with(b"\n") => Ok(()),
            Ok(_) => bail!("the agent closed the connection"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                bail!("no answer within {IO_TIMEOUT:?}")
            }
            Err(e) => Err(anyhow::Error::new(e).context("reading an answer")),
        }
    }

    fn recv(&mut self) -> Result<&[u8]> {
        Client::read_line(&mut self.reader, &mut self.line)?;
        Ok(&self.line)
    }

    /// Receives the answer to the one request outstanding straight into
    /// `arena` at `pos`, and returns its range. Answers are compact JSON
    /// ending in the only `\n`, so only the last byte of each read is looked
    /// at (the caller checks the whole line later, outside the timing).
    fn recv_into(&mut self, arena: &mut [u8], pos: usize) -> Result<(usize, usize)> {
        ensure!(
            self.reader.buffer().is_empty(),
            "the agent sent more than was asked for"
        );
        let stream = self.reader.get_mut();
        let mut end = pos;
        loop {
            let space = match arena.get_mut(end..) {
                Some(space) if !space.is_empty() => space,
                _ => bail!(
                    "an answer is larger than the {} bytes expected",
                    arena.len()
                ),
            };
            match stream.read(space) {
                Ok(0) => bail!("the agent closed the connection"),
                Ok(n) => {
                    end += n;
                    if arena.get(end - 1) == Some(&b'\n') {
                        return Ok((pos, end));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    bail!("no answer within {IO_TIMEOUT:?}")
                }
                Err(e) => return Err(anyhow::Error::new(e).context("reading an answer")),
            }
        }
    }

    /// Receives one answer and checks it is a success (cheaply when it
    /// starts with `{"return"`).
    fn recv_ok(&mut self, request: &[u8]) -> Result<()> {
        let line = self.recv()?;
        if line.starts_with(br#"{"return":"#) {
            return Ok(());
        }
        return_value(request, line).map(|_| ())
    }

    fn call_ok(&mut self, request: &[u8]) -> Result<()> {
        self.send(request)?;
        self.recv_ok(request)
    }

    fn recv_value(&mut self, request: &[u8]) -> Result<serde_json::Value> {
        let line = self.recv()?;
        return_value(request, line)
    }

    fn call_value(&mut self, request: &[u8]) -> Result<serde_json::Value> {
        self.send(request)?;
        self.recv_value(request)
    }
}

/// The `return` member of an answer, or an error naming request and answer.
fn return_value(request: &[u8], line: &[u8]) -> Result<serde_json::Value> {
    let answer: Option<serde_json::Value> = serde_json::from_slice(line).ok();
    match answer.and_then(|mut a| a.get_mut("return").map(serde_json::Value::take)) {
        Some(value) => Ok(value),
        None => bail!("{} answered {}", show(request), show(line).trim_end()),
    }
}

/// At most 300 characters of a request or answer, for error messages.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], bytes.len()),
        None => text.into_owned(),
    }
}

/// A running agent; SIGTERM (by PID) and a bounded wait when stopped or
/// dropped.
struct Agent {
    child: Option<Child>,
    pid: Pid,
    log: PathBuf,
}

impl Agent {
    /// Spawns the agent in `dir` and returns it with a connection and the
    /// time from spawn to the first guest-sync answer.
    fn start(ctx: &Setup, kind: Kind, dir: &Path, rep: usize) -> Result<(Agent, Client, Duration)> {
        let sock = dir.join("sock");
        ensure!(
            sock.as_os_str().len() < 100,
            "socket path {} is too long for a unix socket: set TMPDIR to a shorter directory",
            sock.display()
        );
        let state = dir.join("state");
        fs::create_dir(&state).with_context(|| format!("creating {}", state.display()))?;
        let log = dir.join("agent.log");
        let mut command = match kind {
            Kind::Sandga => {
                let mut command = Command::new(ctx.sandga);
                command.arg("-m").arg("unix-listen").arg("-p").arg(&sock);
                command
                    .arg("-t")
                    .arg(&state)
                    .arg("--policy")
                    .arg(ctx.policy);
                command.env_remove("RUST_LOG");
                command
            }
            Kind::QemuGa => {
                let mut command = Command::new(ctx.qemu_ga);
                command.arg("-m").arg("unix-listen").arg("-p").arg(&sock);
                command.arg("-t").arg(&state);
                // Stay clear of the system's pidfile and /etc/qemu/qemu-ga.conf.
                command.arg("-f").arg(dir.join("qemu-ga.pid"));
                command.env("QGA_CONF", dir.join("qemu-ga.conf"));
                command
            }
        };
        command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
            .stderr(fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?);

        let t = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", kind.name()))?;
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        let mut agent = Agent {
            child: Some(child),
            pid,
            log,
        };
        let stream = loop {
            match UnixStream::connect(&sock) {
                Ok(stream) => break stream,
                Err(e) => {
                    if let Some(status) = agent
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                    {
                        agent.child = None;
                        bail!(
                            "{} exited at start with {status}; its log:\n{}",
                            kind.name(),
                            agent.log_tail()
                        );
                    }
                    if t.elapsed() > START_TIMEOUT {
                        bail!(
                            "{} did not accept on {} within {START_TIMEOUT:?} ({e}); its log:\n{}",
                            kind.name(),
                            sock.display(),
                            agent.log_tail()
                        );
                    }
                    std::thread::sleep(CONNECT_BACKOFF);
                }
            }
        };
        let mut client = Client::new(stream)?;
        let id = 7_000 + rep as u64;
        let sync = format!(r#"{{"execute":"guest-sync","arguments":{{"id":{id}}}}}"#);
        let answer = client.call_value(sync.as_bytes())?;
        let startup = t.elapsed();
        ensure!(answer.as_u64() == Some(id), "{sync} answered {answer}");
        Ok((agent, client, startup))
    }

    /// A `kB` field of /proc/PID/status, in KiB.
    fn status_kib(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        text.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
            .with_context(|| format!("no {field} in {path}"))
    }

    /// utime + stime (fields 14 and 15 of /proc/PID/stat), in clock ticks.
    fn cpu_ticks(&self) -> Result<u64> {
        let path = format!("/proc/{}/stat", self.pid);
        let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // Fields after the command name (field 2, in parentheses) start at 3.
        let rest = text
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Result<u64> {
            fields
                .get(n - 3)
                .and_then(|f| f.parse().ok())
                .with_context(|| format!("no field {n} in {path}"))
        };
        Ok(field(14)? + field(15)?)
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then waits up to [`EXIT_TIMEOUT`]; SIGKILL after that.
    fn stop(&mut self) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the agent is not running");
        };
        let _ = kill(self.pid, Signal::SIGTERM);
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("waiting for the agent")? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the agent did not exit within {EXIT_TIMEOUT:?} of SIGTERM; killed");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// Where the numbers came from.
struct Machine {
    nproc: String,
    cpu: String,
    kernel: String,
    qemu_ga_version: String,
    sandga_version: String,
    /// `git describe --always --dirty` of the tree sandga was built from.
    commit: String,
    clk_tck: f64,
    clk_tck_source: &'static str,
}

impl Machine {
    fn probe(sandga: &Path) -> Result<Machine> {
        let (clk_tck, clk_tck_source) = match output("getconf", &["CLK_TCK"])
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
        {
            Some(tck) if tck > 0.0 => (tck, "getconf CLK_TCK"),
            _ => (100.0, "assumed"),
        };
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(Machine {
            nproc: output("nproc", &[])?,
            cpu,
            kernel: output("uname", &["-r"])?,
            qemu_ga_version: first_line(output(QEMU_GA, &["-V"])?),
            sandga_version: first_line(output(sandga.to_str().unwrap_or("sandga"), &["-V"])?),
            commit: output("git", &["describe", "--always", "--dirty"])
                .unwrap_or_else(|_| "unknown".to_owned()),
            clk_tck,
            clk_tck_source,
        })
    }
}

/// The 1, 5 and 15-minute load averages: other work on the machine skews
/// the numbers.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn first_line(text: String) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

/// A short command's stdout (trimmed); errors if it fails.
fn output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    ensure!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        out.status
    );
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if text.is_empty() {
        text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    }
    Ok(text)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `sorted` must be sorted.
fn median_duration(sorted: &[Duration]) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// Nearest-rank percentile of a sorted slice.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn column(runs: &[[f64; N_METRICS]], metric: usize) -> Vec<f64> {
    runs.iter().map(|r| r[metric]).collect()
}

fn format_value(unit: Unit, v: f64) -> String {
    if v.is_nan() {
        return "n/a".to_owned();
    }
    match unit {
        Unit::Ms if v < 10.0 => format!("{v:.2} ms"),
        Unit::Ms if v < 1000.0 => format!("{v:.1} ms"),
        Unit::Ms => format!("{} ms", thousands(v)),
        Unit::Us => format!("{v:.1} µs"),
        Unit::PerSec => format!("{} req/s", thousands(v)),
        Unit::MbPerSec if v < 100.0 => format!("{v:.1} MB/s"),
        Unit::MbPerSec => format!("{v:.0} MB/s"),
        Unit::Kib => format!("{:.1} MiB", v / 1024.0),
        Unit::Bytes => format!("{:.2} MiB", v / MIB as f64),
    }
}

/// `4 MiB`, `64 KiB` or a byte count.
fn size_text(bytes: usize) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn thousands(v: f64) -> String {
    let digits = format!("{v:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn table(values: &[Vec<[f64; N_METRICS]>; 2]) -> String {
    let mut out = String::from(
        "| Metric | sandga | qemu-ga | sandga/qemu-ga | Target | Met |\n\
         |---|---:|---:|---:|---|---|\n",
    );
    for (i, metric) in METRICS.iter().enumerate() {
        let s = median(&column(&values[0], i));
        let q = median(&column(&values[1], i));
        let ratio = if q > 0.0 && !s.is_nan() {
            s / q
        } else {
            f64::NAN
        };
        let ratio_text = if ratio.is_nan() {
            "n/a".to_owned()
        } else {
            format!("{ratio:.2}×")
        };
        let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
        let (target, met) = match metric.target {
            Target::AtMost(x) => (format!("≤ {x:.1}×"), verdict(ratio <= x).to_owned()),
            Target::AtLeast(x) => (format!("≥ {x:.1}×"), verdict(ratio >= x).to_owned()),
            Target::Informal(x) => (
                format!("(≥ {x:.1}×, no explicit target)"),
                if ratio >= x { "yes" } else { "no" }.to_owned(),
            ),
            Target::Report => ("report only".to_owned(), "–".to_owned()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio_text} | {target} | {met} |",
            metric.label,
            format_value(metric.unit, s),
            format_value(metric.unit, q),
        );
    }
    out
}

fn footnotes(machine: &Machine) -> String {
    format!(
        "Medians across repetitions; ratios are sandga's median over qemu-ga's \
         (for MB/s and req/s higher is better, for everything else lower is better).\n\
         CPU is utime+stime from /proc/PID/stat at {} ticks/s ({}); \
         memory is VmRSS/VmHWM from /proc/PID/status. \
         sandga's binary is its stripped release build, qemu-ga's the installed /usr/sbin/qemu-ga \
         (which also links shared libraries; sandga is a single binary with its components built in).\n",
        machine.clk_tck, machine.clk_tck_source
    )
}

#[allow(clippy::too_many_arguments)]
fn report(
    command_line: &str,
    machine: &Machine,
    sizes: &Sizes,
    table: &str,
    footnotes: &str,
    values: &[Vec<[f64; N_METRICS]>; 2],
    notes: &[String],
    elapsed: Duration,
    load: &[String; 2],
) -> String {
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|_| "unknown".into());
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks: sandga against qemu-ga\n");
    let _ = writeln!(
        out,
        "Generated by `{command_line}` on {date} (the run took {:.0} s). \
         Run it again to overwrite this file.\n",
        elapsed.as_secs_f64()
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "- CPUs (`nproc`): {}", machine.nproc);
    let _ = writeln!(out, "- CPU: {}", machine.cpu);
    let _ = writeln!(out, "- kernel (`uname -r`): {}", machine.kernel);
    let _ = writeln!(out, "- qemu-ga (`qemu-ga -V`): {}", machine.qemu_ga_version);
    let _ = writeln!(
        out,
        "- sandga (`sandga -V`): {}, built from `{}`",
        machine.sandga_version, machine.commit
    );
    let _ = writeln!(
        out,
        "- load average (/proc/loadavg) before the first agent started: {}; at the end: {}\n",
        load[0], load[1]
    );
    let _ = writeln!(out, "## Results\n");
    let _ = writeln!(out, "{table}");
    let _ = writeln!(out, "{footnotes}");
    if !notes.is_empty() {
        let _ = writeln!(out, "Notes from the run:\n");
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## Method\n");
    let _ = writeln!(
        out,
        "Both agents run on this machine on a unix socket (`-m unix-listen`), each with a \
         fresh state directory (`-t`) and its own temporary directory as working directory; \
         sandga with `--policy policies/qemu-ga-compat.toml`, qemu-ga with `-f` and `QGA_CONF` \
         pointing into its temporary directory so that it touches no system file. \
         The client is `xtask/src/bench.rs`: one `UnixStream` connection, one request at a \
         time unless stated, every read bounded by a {}-second timeout. \
         There are {} repetitions; each starts a fresh sandga and then a fresh qemu-ga \
         (interleaved A B A B, so drift of the machine affects both alike), and every \
         number in the table is the median across repetitions of that repetition's value.\n",
        IO_TIMEOUT.as_secs(),
        sizes.reps
    );
    let _ = writeln!(
        out,
        "Per agent and repetition, in this order: start-up is the time from spawn to the \
         answer to the first `guest-sync` (connection retried every {} µs); VmRSS is read \
         right after it. `guest-ping`: {} warm-up requests, then {} sequential requests \
         timed one by one (median and nearest-rank p99), with utime+stime sampled around \
         them for CPU per 1,000 pings; then {} requests with {} in flight (a burst of {}, \
         then one new request per answer) for requests/s. `guest-get-time`, `guest-get-vcpus` and \
         `guest-network-get-interfaces` (components in sandga): {} warm-up each, then {} \
         timed requests each. Files: a {} file of pseudo-random bytes (generated \
         once per run, hard-linked into each agent's directory) is opened `r` and read to \
         its end with `count` {} (VmHWM is read right after: the peak RSS up to and \
         including that phase), then read again with `count` {}; the answers are \
         received into memory touched beforehand and the base64 payloads decoded after \
         the timed loop, their sha256 checked against the file's. \
         Then a new file is opened `w` and the same bytes are written in {} chunks \
         (timed up to and including `guest-file-close`) and its sha256 on disk checked. \
         CPU per GiB is utime+stime across the two reads and the write over the {} \
         moved. MB/s uses MB = 10^6 bytes. Agents are stopped with SIGTERM after each \
         repetition.\n",
        CONNECT_BACKOFF.as_micros(),
        thousands(sizes.ping_warmup as f64),
        thousands(sizes.pings as f64),
        thousands(sizes.pipelined as f64),
        sizes.in_flight,
        sizes.in_flight,
        thousands(sizes.get_time_warmup as f64),
        thousands(sizes.get_times as f64),
        size_text(sizes.file_bytes),
        size_text(sizes.read_counts[0]),
        size_text(sizes.read_counts[1]),
        size_text(sizes.write_chunk),
        size_text(3 * sizes.file_bytes),
    );
    let _ = writeln!(
        out,
        "Round trips and CPU time depend on what else the machine (and, on a virtual \
         machine, its host) is doing: the load average above and the spread below show \
         how steady the run was. Ratios are more stable than absolute numbers, since \
         both agents are measured alternately under the same conditions.\n"
    );
    let _ = writeln!(out, "## Spread across repetitions (min – max)\n");
    let _ = writeln!(out, "| Metric | sandga | qemu-ga |\n|---|---:|---:|");
    for (i, metric) in METRICS.iter().enumerate() {
        let range = |runs: &[[f64; N_METRICS]]| {
            let col = column(runs, i);
            let min = col.iter().copied().fold(f64::INFINITY, f64::min);
            let max = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!(
                "{} – {}",
                format_value(metric.unit, min),
                format_value(metric.unit, max)
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            metric.label,
            range(&values[0]),
            range(&values[1])
        );
    }
    out
}

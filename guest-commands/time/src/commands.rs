//! guest-get-time: arguments in qemu-ga's order and words, the clock read by
//! the host behind [`ClockHost`].

use qapi_args::Args;

use crate::Reply;

/// The `clock` interface: the wit-bindgen import in the component, a fake in
/// tests.
pub trait ClockHost {
    /// Nanoseconds since the Unix epoch.
    fn now(&mut self) -> i64;
}

/// `{}` → nanoseconds since the epoch.
pub fn get_time(host: &mut impl ClockHost, args: Args) -> Result<Reply, String> {
    args.finish()?;
    Ok(Reply::json(host.now().to_string()))
}

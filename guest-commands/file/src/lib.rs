//! sandga's command component for WIT world `file`: guest-file-open, -close,
//! -read, -write, -seek and -flush.
//!
//! The command logic ([`run`], `commands`) is plain Rust over [`FileHost`]
//! so `cargo test` runs it natively with a fake host; the wit-bindgen glue is
//! built for wasm32 only, because its export names do not link natively.

mod commands;

pub use commands::{FileError, FileHost, OpenFlags, ReadOutcome, Whence};
pub use qapi_args::Reply;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: FileHost>(host: &mut H, name: &str, arguments: &str) -> Result<Reply, String> {
    qapi_args::dispatch(
        host,
        "file",
        &[
            ("guest-file-open", commands::open),
            ("guest-file-close", commands::close),
            ("guest-file-read", commands::read),
            ("guest-file-write", commands::write),
            ("guest-file-seek", commands::seek),
            ("guest-file-flush", commands::flush),
        ],
        name,
        arguments,
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "file", path: "../../wit" });

    use sandga::agent::files;

    /// The real host: the `files` imports.
    struct WitHost;

    impl From<files::FileError> for crate::FileError {
        fn from(err: files::FileError) -> Self {
            match err {
                files::FileError::UnknownHandle => Self::UnknownHandle,
                files::FileError::Denied(text) => Self::Denied(text),
                files::FileError::Os(text) => Self::Os(text),
                files::FileError::Invalid(text) => Self::Invalid(text),
            }
        }
    }

    impl crate::FileHost for WitHost {
        fn open(&mut self, path: &str, flags: crate::OpenFlags) -> Result<i64, crate::FileError> {
            let mut wit_flags = files::OpenFlags::empty();
            for (set, flag) in [
                (flags.read, files::OpenFlags::READ),
                (flags.write, files::OpenFlags::WRITE),
                (flags.create, files::OpenFlags::CREATE),
                (flags.truncate, files::OpenFlags::TRUNCATE),
                (flags.append, files::OpenFlags::APPEND),
            ] {
                if set {
                    wit_flags |= flag;
                }
            }
            Ok(files::open(path, wit_flags)?)
        }

        fn close(&mut self, handle: i64) -> Result<(), crate::FileError> {
            Ok(files::close(handle)?)
        }

        fn check(&mut self, handle: i64) -> Result<(), crate::FileError> {
            Ok(files::check(handle)?)
        }

        fn read(
            &mut self,
            handle: i64,
            count: u64,
        ) -> Result<crate::ReadOutcome, crate::FileError> {
            let outcome = files::read(handle, count)?;
            Ok(crate::ReadOutcome {
                count: outcome.count,
                eof: outcome.eof,
            })
        }

        fn write(&mut self, handle: i64, data: &[u8]) -> Result<u64, crate::FileError> {
            Ok(files::write(handle, data)?)
        }

        fn seek(
            &mut self,
            handle: i64,
            offset: i64,
            whence: crate::Whence,
        ) -> Result<u64, crate::FileError> {
            let whence = match whence {
                crate::Whence::Set => files::Whence::Set,
                crate::Whence::Cur => files::Whence::Cur,
                crate::Whence::End => files::Whence::End,
            };
            Ok(files::seek(handle, offset, whence)?)
        }

        fn flush(&mut self, handle: i64) -> Result<(), crate::FileError> {
            Ok(files::flush(handle)?)
        }
    }

    qapi_args::export_command!(WitHost, crate::run);
}

#[cfg(test)]
mod tests;

//! guest-file-open, -close, -read, -write, -seek and -flush: arguments in
//! qemu-ga's order and words, the work done by the host behind [`FileHost`].

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use qapi_args::{Args, JsonType};

use crate::Reply;

/// `sandga:agent/files.open-flags`, mirrored so the logic builds natively.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub truncate: bool,
    pub append: bool,
}

/// `sandga:agent/files.whence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    Set,
    Cur,
    End,
}

/// `sandga:agent/files.file-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileError {
    UnknownHandle,
    Denied(String),
    Os(String),
    Invalid(String),
}

/// `sandga:agent/files.read-outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOutcome {
    pub count: u64,
    pub eof: bool,
}

/// The `files` interface: the wit-bindgen imports in the component, a fake in
/// tests.
pub trait FileHost {
    fn open(&mut self, path: &str, flags: OpenFlags) -> Result<i64, FileError>;
    fn close(&mut self, handle: i64) -> Result<(), FileError>;
    fn check(&mut self, handle: i64) -> Result<(), FileError>;
    fn read(&mut self, handle: i64, count: u64) -> Result<ReadOutcome, FileError>;
    fn write(&mut self, handle: i64, data: &[u8]) -> Result<u64, FileError>;
    fn seek(&mut self, handle: i64, offset: i64, whence: Whence) -> Result<u64, FileError>;
    fn flush(&mut self, handle: i64) -> Result<(), FileError>;
}

/// `QGA_READ_COUNT_DEFAULT`.
const READ_COUNT_DEFAULT: i64 = 4096;
/// `GUEST_FILE_READ_COUNT_MAX`: 48 MiB, so the base64 reply stays under the
/// 64 MiB JSON limit.
const READ_COUNT_MAX: i64 = 48 * 1024 * 1024;

/// qemu-ga's wording for a failed host call. `what` is the command's
/// "failed to …" prefix, which `denied` shares with `os` since both mean the
/// operation was refused.
fn host_error(err: FileError, handle: i64, what: &str) -> String {
    match err {
        FileError::UnknownHandle => format!("handle '{handle}' has not been found"),
        FileError::Denied(text) | FileError::Os(text) => format!("{what}: {text}"),
        FileError::Invalid(text) => text,
    }
}

fn empty_object() -> Reply {
    Reply::json("{}".to_owned())
}

/// The fopen modes qemu-ga accepts (`find_open_flag`), as open flags.
fn open_flags(mode: &str) -> Option<OpenFlags> {
    let (kind, plus) = match mode {
        "r" | "rb" => ('r', false),
        "w" | "wb" => ('w', false),
        "a" | "ab" => ('a', false),
        "r+" | "rb+" | "r+b" => ('r', true),
        "w+" | "wb+" | "w+b" => ('w', true),
        "a+" | "ab+" | "a+b" => ('a', true),
        _ => return None,
    };
    Some(OpenFlags {
        read: kind == 'r' || plus,
        write: kind != 'r' || plus,
        create: kind != 'r',
        truncate: kind == 'w',
        append: kind == 'a',
    })
}

/// `{path: str, '*mode': str}` → the new handle.
pub fn open(host: &mut impl FileHost, mut args: Args) -> Result<Reply, String> {
    let path = args.string("path")?;
    let mode = args.opt_string("mode")?.unwrap_or_else(|| "r".to_owned());
    args.finish()?;
    let flags = open_flags(&mode).ok_or_else(|| format!("invalid file open mode '{mode}'"))?;
    let handle = host.open(&path, flags).map_err(|err| match err {
        FileError::Invalid(text) => text,
        // `open` names no handle, so a host reporting an unknown one is
        // confused; say so in the open error rather than invent a handle.
        FileError::UnknownHandle => {
            format!("failed to open file '{path}' (mode: '{mode}'): unknown handle")
        }
        FileError::Denied(text) | FileError::Os(text) => {
            format!("failed to open file '{path}' (mode: '{mode}'): {text}")
        }
    })?;
    Ok(Reply::json(handle.to_string()))
}

/// `{handle: int}` → `{}`.
pub fn close(host: &mut impl FileHost, mut args: Args) -> Result<Reply, String> {
    let handle = args.int("handle")?;
    args.finish()?;
    host.close(handle)
        .map_err(|err| host_error(err, handle, "failed to close handle"))?;
    Ok(empty_object())
}

/// `{handle: int, '*count': int}` → `{count, eof}` plus the staged
/// `buf-b64`.
pub fn read(host: &mut impl FileHost, mut args: Args) -> Result<Reply, String> {
    let handle = args.int("handle")?;
    let count = args.opt_int("count")?;
    args.finish()?;
    // qemu-ga looks the handle up before it checks the other arguments.
    host.check(handle)
        .map_err(|err| host_error(err, handle, "failed to read file"))?;
    let count = count.unwrap_or(READ_COUNT_DEFAULT);
    let count = u64::try_from(count)
        .ok()
        .filter(|_| count <= READ_COUNT_MAX)
        .ok_or_else(|| format!("value '{count}' is invalid for argument count"))?;
    let outcome = host
        .read(handle, count)
        .map_err(|err| host_error(err, handle, "failed to read file"))?;
    Ok(Reply {
        json: format!(r#"{{"count":{},"eof":{}}}"#, outcome.count, outcome.eof),
        staged_member: Some("buf-b64"),
    })
}

/// Standard base64 with canonical `=` padding. Nonzero bits in the last
/// symbol are ignored, as glib's decoder does: they carry no data.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes `buf-b64` like qemu-ga's `qbase64_decode`, except that input glib
/// would silently truncate (bad length or padding) is refused. Well-formed
/// input is decoded in one pass; only a failure looks closer, to say why.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let err = match BASE64.decode(text) {
        Ok(data) => return Ok(data),
        Err(err) => err,
    };
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n'))
    {
        return Err("Base64 data contains invalid characters".to_owned());
    }
    // qemu-ga accepts line-wrapped base64 (glib skips the newlines).
    let err = if text.contains('\n') {
        match BASE64.decode(text.replace('\n', "")) {
            Ok(data) => return Ok(data),
            Err(err) => err,
        }
    } else {
        err
    };
    let reason = match err {
        base64::DecodeError::InvalidLength(_) => "length is not a multiple of 4",
        base64::DecodeError::InvalidPadding => "missing or misplaced '=' padding",
        // Only '=' can be invalid here: other bytes were refused above.
        base64::DecodeError::InvalidByte(..) => "misplaced '='",
        base64::DecodeError::InvalidLastSymbol(..) => "invalid last symbol",
    };
    Err(format!("Base64 data is malformed: {reason}"))
}

/// `{handle: int, buf-b64: str, '*count': int}` → `{count, eof}`.
pub fn write(host: &mut impl FileHost, mut args: Args) -> Result<Reply, String> {
    let handle = args.int("handle")?;
    let buf_b64 = args.required("buf-b64")?.text()?;
    let count = args.opt_int("count")?;
    args.finish()?;
    // qemu-ga looks the handle up before it decodes the data.
    host.check(handle)
        .map_err(|err| host_error(err, handle, "failed to write to file"))?;
    let mut data = decode_base64(&buf_b64)?;
    // Up to 64 MiB of text: free it before the host call copies the data.
    drop(buf_b64);
    if let Some(count) = count {
        let len = usize::try_from(count)
            .ok()
            .filter(|&len| len <= data.len())
            .ok_or_else(|| format!("value '{count}' is invalid for argument count"))?;
        data.truncate(len);
    }
    let written = host
        .write(handle, &data)
        .map_err(|err| host_error(err, handle, "failed to write to file"))?;
    // `eof` is feof() after fwrite in qemu-ga, which a write never sets.
    Ok(Reply::json(format!(r#"{{"count":{written},"eof":false}}"#)))
}

/// `{handle: int, offset: int, whence: GuestFileWhence}` → `{position, eof}`.
pub fn seek(host: &mut impl FileHost, mut args: Args) -> Result<Reply, String> {
    let handle = args.int("handle")?;
    let offset = args.int("offset")?;
    let whence = args.required("whence")?;
    // GuestFileWhence is the alternate `int | QGASeek`; the visitor picks the
    // branch by JSON type, so a float fails as an int, not as the alternate.
    let code = match whence.json_type() {
        JsonType::Number => whence.int()?,
        // QGASeek's index is its code: set=0, cur=1, end=2.
        JsonType::String => whence.enum_index(&["set", "cur", "end"])? as i64,
        _ => return Err(whence.type_error("GuestFileWhence")),
    };
    args.finish()?;
    // qemu-ga looks the handle up before it checks the code.
    host.check(handle)
        .map_err(|err| host_error(err, handle, "failed to seek file"))?;
    let whence = match code {
        0 => Whence::Set,
        1 => Whence::Cur,
        2 => Whence::End,
        _ => return Err(format!("invalid whence code {code}")),
    };
    let position = host
        .seek(handle, offset, whence)
        .map_err(|err| host_error(err, handle, "failed to seek file"))?;
    // After a successful fseek, feof() is always false.
    Ok(Reply::json(format!(
        r#"{{"position":{position},"eof":false}}"#
    )))
}

/// `{handle: int}` → `{}`.
pub fn flush(host: &mut impl FileHost, mut args: Args) -> Result<Reply, String> {
    let handle = args.int("handle")?;
    args.finish()?;
    host.flush(handle)
        .map_err(|err| host_error(err, handle, "failed to flush file"))?;
    Ok(empty_object())
}

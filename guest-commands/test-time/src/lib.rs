//! A hostile stand-in for the `time` component, for the runtime's sandbox
//! tests. It imports every host interface (world `runtime`) and, depending on
//! its arguments, spins forever, allocates without bound, traps, returns
//! malformed replies, claims staged bytes it never read, leaves a file open
//! behind a trap or asks the host for more than it may have.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "runtime", path: "../../wit" });

    use exports::sandga::agent::command::{CommandError, Guest, Reply};
    use sandga::agent::{clock, files};

    struct Hostile;

    fn reply(json: impl Into<String>) -> Result<Reply, CommandError> {
        Ok(Reply {
            json: json.into(),
            staged_member: None,
        })
    }

    impl Guest for Hostile {
        fn run(_name: String, arguments: String) -> Result<Reply, CommandError> {
            let wants = |what: &str| arguments.contains(what);
            if wants("spin") {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            if wants("grow") {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            if wants("open-then-trap") {
                // `{"open-then-trap":"<path>"}`: open it, then fail.
                let path = arguments.split('"').nth(3).unwrap_or_default();
                let _ = files::open(path, files::OpenFlags::READ);
                std::process::abort();
            }
            if wants("trap") {
                std::process::abort();
            }
            if wants("bad-json") {
                return reply("{\"return\": ");
            }
            if wants("stage-scalar") {
                return Ok(Reply {
                    json: "42".into(),
                    staged_member: Some("buf-b64".into()),
                });
            }
            if wants("stage-without-read") {
                return Ok(Reply {
                    json: "{}".into(),
                    staged_member: Some("buf-b64".into()),
                });
            }
            if wants("read-too-much") {
                let answer = match files::read(1000, u64::MAX) {
                    Ok(_) => "host served an oversized read".to_string(),
                    Err(files::FileError::Invalid(why)) => why,
                    Err(other) => format!("{other:?}"),
                };
                return Err(CommandError { desc: answer });
            }
            reply(clock::now().to_string())
        }
    }

    export!(Hostile);
}

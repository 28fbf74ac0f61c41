//! A small Linux guest under QEMU (TCG) running the built `sandga`, as a
//! distribution would run qemu-ga: started by init on the real
//! virtio-serial port `org.qemu.guest_agent.0`, restarted when it dies.
//!
//! The host reaches the guest four ways, all unix sockets in the guest's
//! temporary directory:
//! - `qga.sock`: the agent's virtio-serial port (what libvirt connects to);
//! - `ttyS1.sock`: a second ISA serial port, served by a second agent;
//! - `ctl.sock`: a shell on a port of its own, to check every result from
//!   outside the agent ([`Control`]);
//! - `qmp.sock`: QEMU's monitor, for the port's open/close events ([`Qmp`]).
//!
//! The guest has a data disk, ext4 at `/mnt/data`, for the filesystem
//! commands.
//!
//! The guest is an initramfs built here: static busybox, the kernel modules
//! the devices need (in dependency order, from the kernel's `modules.dep`),
//! `sandga` and the libraries it links, and the files in `tests/vm/image/`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support;

/// Under TCG on a busy 2-core machine a boot takes 5–15 s; this is the
/// bound past which it is broken.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound on one answer of an agent in the guest: an emulated guest on a
/// busy machine can be slow, but an answer that never comes (a lost
/// wake-up) still fails.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one control-shell command.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a guest is assembled from. `find` says what is missing.
pub struct Prerequisites {
    qemu: PathBuf,
    mkfs: PathBuf,
    busybox: PathBuf,
    kernel: PathBuf,
    modules: PathBuf,
}

/// The packages that provide the prerequisites on Debian (xz extracts the
/// kernel for a faster boot; e2fsprogs makes the guest's data disk).
pub const PACKAGES: &str = "qemu-system-x86 busybox-static linux-image-amd64 xz-utils e2fsprogs";

/// The modules the guest's devices need; their dependencies come first.
/// ext4 finds its checksum through the crypto API, which cannot load
/// crc32c by itself without udev and modprobe.
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_console",
    "virtio_net",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
];

/// The guest's data disk: ext4, mounted at /mnt/data, for the commands
/// that act on filesystems.
const DATA_DISK_BYTES: u64 = 64 << 20;

impl Prerequisites {
    pub fn find() -> Result<Prerequisites, String> {
        let mut missing = Vec::new();
        let qemu = find_program("qemu-system-x86_64");
        if qemu.is_none() {
            missing.push("qemu-system-x86_64".to_string());
        }
        let mkfs = find_program("mkfs.ext4");
        if mkfs.is_none() {
            missing.push("mkfs.ext4".to_string());
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| is_static(path));
        if busybox.is_none() {
            missing.push("a static busybox".to_string());
        }
        let kernel = newest_kernel();
        if kernel.is_none() {
            missing.push("a kernel in /boot with its modules in /lib/modules".to_string());
        }
        match (qemu, mkfs, busybox, kernel) {
            (Some(qemu), Some(mkfs), Some(busybox), Some((kernel, modules))) => Ok(Prerequisites {
                qemu,
                mkfs,
                busybox,
                kernel,
                modules,
            }),
            _ => Err(missing.join(", ")),
        }
    }
}

/// On the PATH, or in the sbin directories a user's PATH may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A fresh ext4 image.
fn make_data_disk(mkfs: &Path, path: &Path) {
    fs::File::create(path)
        .and_then(|file| file.set_len(DATA_DISK_BYTES))
        .expect("creating the data disk");
    let made = Command::new(mkfs)
        .args(["-q", "-F", "-L", "data"])
        .arg(path)
        .status()
        .expect("running mkfs.ext4");
    assert!(made.success(), "mkfs.ext4 failed: {made}");
}

/// A static binary: a 64-bit ELF without a program interpreter (`PT_INTERP`)
/// among its program headers.
fn is_static(path: &Path) -> bool {
    const PT_INTERP: u32 = 3;
    let Ok(elf) = fs::read(path) else {
        return false;
    };
    let number = |at: usize, len: usize| -> Option<usize> {
        let bytes = elf.get(at..at + len)?;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0, |n, &b| (n << 8) | usize::from(b)),
        )
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(table), Some(entry_size), Some(entries)) =
        (number(0x20, 8), number(0x36, 2), number(0x38, 2))
    else {
        return false;
    };
    (0..entries).all(|i| number(table + i * entry_size, 4) != Some(PT_INTERP as usize))
}

/// The most recently installed `/boot/vmlinuz-<version>` that can be read
/// and whose `/lib/modules/<version>` exists.
fn newest_kernel() -> Option<(PathBuf, PathBuf)> {
    fs::read_dir("/boot")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix("vmlinuz-")?;
            let modules = Path::new("/lib/modules").join(version);
            // Some distributions make kernels readable by root only.
            fs::File::open(entry.path()).ok()?;
            let installed = entry.metadata().ok()?.modified().ok()?;
            modules
                .join("modules.dep")
                .is_file()
                .then(|| (installed, entry.path(), modules))
        })
        .max()
        .map(|(_, kernel, modules)| (kernel, modules))
}

/// The kernel to boot. QEMU boots an uncompressed `vmlinux` directly (PVH),
/// which under TCG saves the ~6 s a bzImage spends decompressing itself;
/// it is extracted once from the bzImage and cached.
fn bootable_kernel(bzimage: &Path) -> PathBuf {
    // Keyed by size too: a rebuilt kernel may keep its version string.
    let size = fs::metadata(bzimage).map_or(0, |m| m.len());
    let name = bzimage
        .file_name()
        .map(|n| n.to_string_lossy().replace("vmlinuz", "vmlinux"))
        .unwrap_or_else(|| "vmlinux".into());
    let cached = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{size}"));
    if cached.is_file() {
        return cached;
    }
    match extract_vmlinux(bzimage, &cached) {
        Ok(()) => cached,
        Err(reason) => {
            eprintln!("vm: booting the compressed kernel ({reason}); this is slower under TCG");
            bzimage.to_path_buf()
        }
    }
}

/// The bzImage header (Documentation/arch/x86/boot.rst) gives where its
/// compressed payload lies; Debian's is xz.
fn extract_vmlinux(bzimage: &Path, out: &Path) -> Result<(), String> {
    let image = fs::read(bzimage).map_err(|e| format!("reading {}: {e}", bzimage.display()))?;
    let le32 = |at: usize| {
        image
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let setup_sects = match image.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err("not a bzImage".into()),
    };
    let (Some(offset), Some(length)) = (le32(0x248), le32(0x24c)) else {
        return Err("not a bzImage".into());
    };
    let start = (setup_sects + 1) * 512 + offset as usize;
    let payload = image
        .get(start..start + length as usize)
        .ok_or("payload outside the image")?;
    if !payload.starts_with(b"\xfd7zXZ\0") {
        return Err("the payload is not xz".into());
    }
    let partial = out.with_extension("partial");
    let file = fs::File::create(&partial).map_err(|e| format!("creating {partial:?}: {e}"))?;
    // The payload ends with the uncompressed size after the xz stream.
    let mut xz = Command::new("xz")
        .args(["--decompress", "--stdout", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|e| format!("running xz: {e}"))?;
    let fed = xz.stdin.take().map(|mut stdin| stdin.write_all(payload));
    let status = xz.wait().map_err(|e| format!("waiting for xz: {e}"))?;
    if !status.success() || !matches!(fed, Some(Ok(()))) {
        return Err(format!("xz failed: {status}"));
    }
    fs::rename(&partial, out).map_err(|e| format!("renaming {partial:?}: {e}"))
}

/// The initramfs: a newc cpio archive.
struct Image {
    archive: cpio_writer::Archive,
    dirs: BTreeSet<String>,
}

mod cpio_writer {
    use std::io::Write;

    pub struct Archive {
        pub bytes: Vec<u8>,
        inode: u32,
    }

    impl Archive {
        pub fn new() -> Archive {
            Archive {
                bytes: Vec::new(),
                inode: 1,
            }
        }

        /// `mode` includes the file type bits.
        pub fn add(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
            self.inode += 1;
            let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
            let size = u32::try_from(data.len()).expect("an initramfs member under 4 GiB");
            let mut writer = cpio::newc::Builder::new(name)
                .ino(self.inode)
                .mode(mode)
                .nlink(nlink)
                .rdev_major(rdev.0)
                .rdev_minor(rdev.1)
                .write(&mut self.bytes, size);
            writer.write_all(data).expect("writing to memory");
            writer.finish().expect("writing to memory");
        }

        pub fn finish(mut self) -> Vec<u8> {
            cpio::newc::trailer(&mut self.bytes).expect("writing to memory");
            self.bytes
        }
    }
}

impl Image {
    fn new() -> Image {
        Image {
            archive: cpio_writer::Archive::new(),
            dirs: BTreeSet::new(),
        }
    }

    fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.archive.add(path, 0o040755, &[], (0, 0));
        self.dirs.insert(path.to_string());
    }

    fn parent(&mut self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        path.to_string()
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        let path = self.parent(path);
        self.archive.add(&path, 0o100000 | mode, data, (0, 0));
    }

    /// A copy of a host file (following symlinks), at `path` in the guest.
    fn copy(&mut self, path: &str, from: &Path) {
        let data = fs::read(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
        self.file(path, 0o755, &data);
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let path = self.parent(path);
        self.archive.add(&path, 0o120777, target.as_bytes(), (0, 0));
    }

    fn char_device(&mut self, path: &str, mode: u32, rdev: (u32, u32)) {
        let path = self.parent(path);
        self.archive.add(&path, 0o020000 | mode, &[], rdev);
    }

    /// A dynamically linked host program with the libraries `ldd` names,
    /// each at its host path.
    fn program_with_libraries(&mut self, path: &str, from: &Path) {
        self.copy(path, from);
        let ldd = Command::new("ldd")
            .arg(from)
            .output()
            .unwrap_or_else(|e| panic!("running ldd: {e}"));
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)".
            let library = line
                .split_whitespace()
                .find(|word| word.starts_with('/'))
                .map(str::to_string);
            if let Some(library) = library {
                self.copy(&library, Path::new(&library));
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        self.archive.finish()
    }
}

/// The modules to load, dependencies first, as paths in the guest.
fn modules_in_load_order(modules_dir: &Path) -> Vec<(String, PathBuf)> {
    let dep = fs::read_to_string(modules_dir.join("modules.dep")).expect("reading modules.dep");
    let deps: Vec<(&str, Vec<&str>)> = dep
        .lines()
        .filter_map(|line| {
            let (module, needs) = line.split_once(':')?;
            Some((module, needs.split_whitespace().collect()))
        })
        .collect();
    let by_name = |name: &str| -> Option<&str> {
        deps.iter().map(|(path, _)| *path).find(|path| {
            let file = path.rsplit('/').next().unwrap_or(path);
            let stem = file.split('.').next().unwrap_or(file);
            stem.replace('-', "_") == name
        })
    };
    let mut ordered: Vec<String> = Vec::new();
    fn visit(path: &str, deps: &[(&str, Vec<&str>)], ordered: &mut Vec<String>) {
        if ordered.iter().any(|done| done == path) {
            return;
        }
        let needs = deps
            .iter()
            .find(|(module, _)| *module == path)
            .map(|(_, needs)| needs.clone())
            .unwrap_or_default();
        for need in needs {
            visit(need, deps, ordered);
        }
        ordered.push(path.to_string());
    }
    // A module missing from modules.dep is built into the kernel.
    for path in MODULES.iter().filter_map(|name| by_name(name)) {
        visit(path, &deps, &mut ordered);
    }
    ordered
        .into_iter()
        .map(|path| {
            let file = path.rsplit('/').next().unwrap_or(&path).to_string();
            (format!("/lib/modules/{file}"), modules_dir.join(&path))
        })
        .collect()
}

fn build_initramfs(prerequisites: &Prerequisites, sandga: &Path) -> Vec<u8> {
    let image_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vm/image");
    let mut image = Image::new();
    for dir in [
        "proc", "sys", "dev", "tmp", "run", "srv", "var", "root", "sbin",
    ] {
        image.dir(dir);
    }
    // The kernel opens /dev/console before anything mounts devtmpfs.
    image.char_device("/dev/console", 0o600, (5, 1));
    image.char_device("/dev/null", 0o666, (1, 3));
    image.copy("/bin/busybox", &prerequisites.busybox);
    image.symlink("/bin/sh", "busybox");
    for (name, guest_path, mode) in [
        ("init", "/init", 0o755),
        ("rcS", "/etc/rcS", 0o755),
        ("ctl", "/bin/ctl", 0o755),
        ("inittab", "/etc/inittab", 0o644),
        ("policy.toml", "/etc/sandga/policy.toml", 0o644),
    ] {
        let data = fs::read(image_dir.join(name)).expect("reading tests/vm/image");
        image.file(guest_path, mode, &data);
    }
    let mut load_list = String::new();
    for (guest_path, host_path) in modules_in_load_order(&prerequisites.modules) {
        image.copy(&guest_path, &host_path);
        load_list.push_str(&guest_path);
        load_list.push('\n');
    }
    image.file("/etc/modules", 0o644, load_list.as_bytes());
    image.program_with_libraries("/sbin/sandga", sandga);
    image.finish()
}

/// A booted guest. Dropping it stops QEMU.
pub struct Guest {
    dir: TempDir,
    qemu: Child,
    control: Control,
}

impl Guest {
    /// Boots a guest with the given QEMU CPU model and waits until its
    /// control shell answers.
    pub fn boot(prerequisites: &Prerequisites, cpu: &str) -> Guest {
        let started = Instant::now();
        let dir = support::temp_dir();
        let initramfs = dir.path().join("initramfs.cpio");
        fs::write(
            &initramfs,
            build_initramfs(prerequisites, &support::sandga_bin()),
        )
        .expect("writing the initramfs");
        let kernel = bootable_kernel(&prerequisites.kernel);
        let disk = dir.path().join("data.img");
        make_data_disk(&prerequisites.mkfs, &disk);
        let socket = |name: &str| dir.path().join(name).display().to_string();
        let chardev = |id: &str, name: &str| {
            format!("socket,id={id},path={},server=on,wait=off", socket(name))
        };
        let qemu = Command::new(&prerequisites.qemu)
            .args(["-machine", "q35", "-accel", "tcg", "-cpu", cpu])
            .args(["-m", "512M", "-smp", "2"])
            .args([
                "-display",
                "none",
                "-no-reboot",
                "-nodefaults",
                "-no-user-config",
            ])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initramfs)
            .args(["-append", "console=ttyS0 quiet panic=-1"])
            .arg("-serial")
            .arg(format!("file:{}", socket("console.log")))
            .args([
                "-chardev",
                &chardev("isa", "ttyS1.sock"),
                "-serial",
                "chardev:isa",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket("qmp.sock")))
            .args(["-device", "virtio-serial-pci,id=vser0"])
            .args(["-chardev", &chardev("qga", "qga.sock")])
            .args([
                "-device",
                "virtserialport,bus=vser0.0,chardev=qga,id=qgaport,name=org.qemu.guest_agent.0",
            ])
            .args(["-chardev", &chardev("ctl", "ctl.sock")])
            .args([
                "-device",
                "virtserialport,bus=vser0.0,chardev=ctl,id=ctlport,name=org.sandga.control",
            ])
            .arg("-drive")
            // Discards reach the image file, so a trim shows on the host.
            .arg(format!(
                "file={},if=none,id=data,format=raw,discard=unmap",
                disk.display()
            ))
            .args(["-device", "virtio-blk-pci,drive=data"])
            .args(["-netdev", "user,id=net0,restrict=on"])
            // No option ROM: the kernel drives the NIC, nothing boots from it.
            .args(["-device", "virtio-net-pci,netdev=net0,romfile="])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("qemu.log")).expect("creating qemu.log"))
            .spawn()
            .expect("starting qemu-system-x86_64");
        let mut guest = Guest {
            control: Control::connect(&dir.path().join("ctl.sock")),
            dir,
            qemu,
        };
        // The control shell reads this once init has started it.
        let answered = guest.control.run_within("true", BOOT_TIMEOUT);
        if answered.is_none() {
            panic!(
                "the guest did not boot within {BOOT_TIMEOUT:?}\n{}",
                guest.diagnostics()
            );
        }
        println!(
            "vm: guest on -cpu {cpu} up in {:.1} s ({} kernel)",
            started.elapsed().as_secs_f64(),
            if kernel == prerequisites.kernel {
                "bzImage"
            } else {
                "PVH vmlinux"
            }
        );
        guest
    }

    /// Whether QEMU exits (the guest powered off) within `timeout`.
    pub fn exits_within(&mut self, timeout: Duration) -> bool {
        support::wait_bounded(&mut self.qemu, timeout).is_some()
    }

    /// What the guest wrote to its console (the kernel, init, rcS).
    pub fn console(&self) -> String {
        fs::read_to_string(self.socket("console.log")).unwrap_or_default()
    }

    /// Whether QEMU still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.qemu.try_wait(), Ok(None))
    }

    pub fn socket(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client on the agent's virtio-serial port, synchronised as libvirt
    /// does it (the agent may still be starting).
    pub fn agent(&self) -> support::Client {
        connect_agent(&self.socket("qga.sock"))
    }

    /// A client on the ISA serial port's agent.
    pub fn isa_agent(&self) -> support::Client {
        connect_agent(&self.socket("ttyS1.sock"))
    }

    pub fn control(&mut self) -> &mut Control {
        &mut self.control
    }

    pub fn qmp(&self) -> Qmp {
        Qmp::connect(&self.socket("qmp.sock"))
    }

    /// What helps understand a failure: the console and the agents' logs.
    pub fn diagnostics(&mut self) -> String {
        let console = self.console();
        let qemu = fs::read_to_string(self.socket("qemu.log")).unwrap_or_default();
        let mut report = format!(
            "--- guest console (tail) ---\n{}\n--- qemu ---\n{qemu}\n",
            tail(&console, 40)
        );
        for (what, command) in [
            (
                "/var/log/sandga.log (tail)",
                "tail -n 30 /var/log/sandga.log",
            ),
            (
                "/var/log/sandga-isa.log (tail)",
                "tail -n 30 /var/log/sandga-isa.log",
            ),
            (
                "the agent's port, as the driver counts it",
                "cat /sys/kernel/debug/virtio-ports/vport0p1",
            ),
            (
                "the agent's threads",
                "for t in /proc/$(cat /run/sandga.pid)/task/*; do cat $t/comm $t/wchan; echo; done",
            ),
        ] {
            let text = self
                .control
                .run_within(command, Duration::from_secs(10))
                .map(|(_, out)| out)
                .unwrap_or_else(|| "(the control shell does not answer)".into());
            report.push_str(&format!("--- {what} ---\n{text}\n"));
        }
        report
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// Connects to an agent's port and synchronises: sends `guest-sync` with a
/// fresh id until the agent answers it, dropping anything stale, as libvirt
/// does on every new connection.
pub fn connect_agent(socket: &Path) -> support::Client {
    let stream = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
    let mut client = support::Client::with_read_timeout(stream, AGENT_TIMEOUT);
    resync(&mut client);
    client
}

/// Sends `guest-sync` until its own id comes back (bounded).
pub fn resync(client: &mut support::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut id: u64 = 1_795_279_719_404;
    while Instant::now() < deadline {
        id += 1;
        client.send(&format!(
            "{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{id}}}}}\n"
        ));
        let answer_by = Instant::now() + Duration::from_secs(3);
        while let Some(response) = client.recv_within(answer_by - Instant::now()) {
            if response.get("return") == Some(&json!(id)) {
                return;
            }
        }
    }
    panic!("the agent did not answer guest-sync within 60 s");
}

/// The control shell: runs a command in the guest, returns its exit status
/// and output.
pub struct Control {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    /// Tags each command, so a late answer to one that timed out is
    /// never taken for the answer to the next.
    tag: u64,
}

impl Control {
    fn connect(socket: &Path) -> Control {
        // QEMU creates the socket as it starts.
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("connecting to {}: {e}", socket.display()),
            }
        };
        let reader = BufReader::new(stream.try_clone().expect("cloning the socket"));
        Control {
            stream,
            reader,
            tag: 0,
        }
    }

    /// Runs `command` (one line of shell), or `None` if no answer came
    /// within `timeout`.
    pub fn run_within(&mut self, command: &str, timeout: Duration) -> Option<(i32, String)> {
        assert!(!command.contains('\n'), "one line per command");
        self.tag += 1;
        self.stream
            .write_all(format!("{} {command}\n", self.tag).as_bytes())
            .expect("writing to the control shell");
        let marker = format!("@@{} rc=", self.tag);
        let deadline = Instant::now() + timeout;
        let mut output = String::new();
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = match support::read_line_within(&mut self.reader, left) {
                support::Line::Read(line) => String::from_utf8_lossy(&line).into_owned(),
                support::Line::TimedOut => return None,
                support::Line::Closed => panic!("the control shell's socket closed"),
            };
            if let Some(status) = line.strip_prefix(&marker) {
                // The shell prints a newline before the status line.
                let output = output.strip_suffix('\n').unwrap_or(&output).to_string();
                let status = status.trim().parse().expect("a numeric exit status");
                return Some((status, output));
            }
            if line.starts_with("@@") {
                // The end of an earlier command's late answer.
                output.clear();
            } else {
                output.push_str(&line);
            }
        }
    }

    /// Runs `command`, which must succeed; returns its output.
    #[track_caller]
    pub fn ok(&mut self, command: &str) -> String {
        match self.run_within(command, CONTROL_TIMEOUT) {
            Some((0, output)) => output,
            Some((status, output)) => {
                panic!("guest command `{command}` exited {status}: {output}")
            }
            None => panic!("guest command `{command}` did not finish in {CONTROL_TIMEOUT:?}"),
        }
    }

    /// Runs `command` and returns its exit status.
    #[track_caller]
    pub fn status(&mut self, command: &str) -> i32 {
        match self.run_within(command, CONTROL_TIMEOUT) {
            Some((status, _)) => status,
            None => panic!("guest command `{command}` did not finish in {CONTROL_TIMEOUT:?}"),
        }
    }
}

/// QEMU's monitor, for what only the machine sees: whether the guest holds
/// a virtio-serial port open.
pub struct Qmp {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Qmp {
    fn connect(socket: &Path) -> Qmp {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone().expect("cloning the socket")),
            stream,
        };
        let greeting = qmp.next_message(Duration::from_secs(10));
        assert!(
            greeting.is_some_and(|g| g.get("QMP").is_some()),
            "no QMP greeting"
        );
        qmp.execute("qmp_capabilities");
        qmp
    }

    pub fn execute(&mut self, command: &str) -> Value {
        self.execute_with(command, json!({}))
    }

    pub fn execute_with(&mut self, command: &str, arguments: Value) -> Value {
        let request = json!({"execute": command, "arguments": arguments});
        self.stream
            .write_all(format!("{request}\n").as_bytes())
            .expect("writing to QMP");
        loop {
            let message = self
                .next_message(Duration::from_secs(10))
                .unwrap_or_else(|| panic!("no answer to QMP {command}"));
            if let Some(result) = message.get("return") {
                return result.clone();
            }
            assert!(message.get("error").is_none(), "QMP {command}: {message}");
        }
    }

    /// Waits for the event `VSERPORT_CHANGE` of port `id` with `open`.
    pub fn wait_port_change(&mut self, id: &str, open: bool, timeout: Duration) -> bool {
        self.wait_for(timeout, |message| {
            message.get("event") == Some(&json!("VSERPORT_CHANGE"))
                && message["data"]["id"] == json!(id)
                && message["data"]["open"] == json!(open)
        })
        .is_some()
    }

    /// Waits for the event named `event`; its `data`.
    pub fn wait_event(&mut self, event: &str, timeout: Duration) -> Option<Value> {
        self.wait_for(timeout, |message| {
            message.get("event") == Some(&json!(event))
        })
        .map(|message| message["data"].clone())
    }

    /// The first message `wanted` accepts within `timeout`.
    fn wait_for(&mut self, timeout: Duration, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let message = self.next_message(left)?;
            if wanted(&message) {
                return Some(message);
            }
        }
        None
    }

    fn next_message(&mut self, timeout: Duration) -> Option<Value> {
        match support::read_line_within(&mut self.reader, timeout) {
            support::Line::Read(line) => serde_json::from_slice(&line).ok(),
            support::Line::TimedOut | support::Line::Closed => None,
        }
    }
}

/// Reads `/proc/<pid>` of a guest process: CPU ticks (user + system) and
/// context switches summed over its threads.
pub fn process_activity(control: &mut Control, pid: u32) -> (u64, u64) {
    let ticks = support::cpu_ticks(&control.ok(&format!("cat /proc/{pid}/stat")));
    let counters: Vec<u64> = control
        .ok(&format!("cat /proc/{pid}/task/*/status"))
        .lines()
        .filter(|line| line.contains("ctxt_switches:"))
        .map(|line| {
            line.split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unreadable /proc status line {line:?}"))
        })
        .collect();
    assert!(
        !counters.is_empty(),
        "no context-switch counters for pid {pid}"
    );
    (ticks, counters.iter().sum())
}

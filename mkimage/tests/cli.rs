//! End-to-end tests of the `mkimage` binary: exit codes, the exact
//! `path:line:col: message` lines, program ELF checks and a build ->
//! inspect round trip. Program ELFs come from the small generator below.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const PAGE: u64 = 0x1000;

/// One PT_LOAD to emit.
struct Seg<'a> {
    vaddr: u64,
    flags: u32,
    bytes: &'a [u8],
    mem_len: u64,
}

/// Writes a little-endian ELF64 x86-64 ET_EXEC: header, program headers,
/// then each segment's bytes at a page-congruent file offset.
fn make_elf(entry: u64, segs: &[Seg<'_>]) -> Vec<u8> {
    let mut out = vec![0u8; EHDR_LEN + PHDR_LEN * segs.len()];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // ELFCLASS64
    out[5] = 1; // ELFDATA2LSB
    out[6] = 1; // EV_CURRENT
    out[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&(EHDR_LEN as u64).to_le_bytes()); // e_phoff
    out[52..54].copy_from_slice(&(EHDR_LEN as u16).to_le_bytes());
    out[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
    out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    let mut next_page = PAGE;
    for (i, s) in segs.iter().enumerate() {
        let offset = next_page + s.vaddr % PAGE;
        let ph = EHDR_LEN + PHDR_LEN * i;
        let fields: [u64; 6] = [
            offset,
            s.vaddr,
            s.vaddr,
            s.bytes.len() as u64,
            s.mem_len,
            PAGE,
        ];
        out[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        out[ph + 4..ph + 8].copy_from_slice(&s.flags.to_le_bytes());
        for (j, f) in fields.iter().enumerate() {
            out[ph + 8 + 8 * j..ph + 16 + 8 * j].copy_from_slice(&f.to_le_bytes());
        }
        let start = offset as usize;
        out.resize(start + s.bytes.len(), 0);
        out[start..].copy_from_slice(s.bytes);
        next_page = (offset + s.bytes.len() as u64).div_ceil(PAGE) * PAGE;
    }
    out
}

/// A valid program: code at 0x401000, data at 0x402000.
fn good_elf() -> Vec<u8> {
    let code = [0xf4u8, 0xeb, 0xfd]; // hlt; jmp $-1
    make_elf(
        0x40_1000,
        &[
            Seg {
                vaddr: 0x40_1000,
                flags: PF_R | PF_X,
                bytes: &code,
                mem_len: 3,
            },
            Seg {
                vaddr: 0x40_2000,
                flags: PF_R | PF_W,
                bytes: &[1, 2, 3, 4],
                mem_len: 0x2000,
            },
        ],
    )
}

/// A fresh, empty directory for one test.
fn scratch(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mkimage-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("programs")).expect("create scratch dir");
    dir
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).expect("write test file");
}

/// Runs mkimage in `dir` (so relative paths read as typed).
fn mkimage(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkimage"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run mkimage")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit 1 and exactly these stderr lines.
fn assert_fails(o: &Output, lines: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert_eq!(err.lines().collect::<Vec<_>>(), lines);
}

const WITH_PROGRAM: &str = "[scenario]\nname = \"t\"\n\n[[program]]\nname = \"hello\"\n";

fn build_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "build",
        "m.toml",
        "--programs",
        "programs",
        "-o",
        "out.initrd",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn check_valid_full_manifest() {
    let dir = scratch("full");
    write(&dir.join("full.toml"), include_str!("full.toml"));
    let o = mkimage(&dir, &["check", "full.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn check_reports_every_error() {
    let dir = scratch("errs");
    write(
        &dir.join("m.toml"),
        "[scenario]\nname = \"X\"\nfoo = 1\n[workload]\nworkers = 0\n",
    );
    let o = mkimage(&dir, &["check", "m.toml"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    let firsts: Vec<&str> = err
        .lines()
        .map(|l| l.split(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        firsts,
        [
            "m.toml:2:8",
            "m.toml:3:1",
            "m.toml:4:1",
            "m.toml:4:1",
            "m.toml:4:1",
            "m.toml:4:1",
            "m.toml:4:1",
            "m.toml:5:11"
        ]
    );
}

#[test]
fn check_missing_file() {
    let dir = scratch("missing");
    let o = mkimage(&dir, &["check", "nope.toml"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.starts_with("nope.toml: cannot read: "), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn check_not_utf8() {
    let dir = scratch("utf8");
    write(&dir.join("m.toml"), b"[scenario]\nname = \"\xff\xfe\"\n");
    assert_fails(
        &mkimage(&dir, &["check", "m.toml"]),
        &["m.toml:2:9: file is not valid UTF-8"],
    );
}

#[test]
fn check_binary_garbage_never_panics() {
    let dir = scratch("garbage");
    let elf = good_elf();
    write(&dir.join("m.toml"), &elf);
    let o = mkimage(&dir, &["check", "m.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = scratch("usage");
    assert_eq!(mkimage(&dir, &[]).status.code(), Some(2));
    assert_eq!(mkimage(&dir, &["frobnicate"]).status.code(), Some(2));
    assert_eq!(mkimage(&dir, &["build", "m.toml"]).status.code(), Some(2));
    for bad in ["0", "101", "x"] {
        let o = mkimage(&dir, &build_args(&["--repeat", bad]));
        assert_eq!(o.status.code(), Some(2), "--repeat {bad}");
        assert!(stderr(&o).contains("--repeat must be an integer 1..=100"));
    }
}

#[test]
fn build_missing_program() {
    let dir = scratch("noprog");
    // The name's value starts at column 11.
    write(
        &dir.join("m.toml"),
        "[scenario]\nname = \"t\"\n[[program]]\nname   =  \"ghost\"\n",
    );
    assert_fails(
        &mkimage(&dir, &build_args(&[])),
        &["m.toml:4:11: program \"ghost\" not found in programs"],
    );
    assert!(!dir.join("out.initrd").exists());
}

#[test]
fn build_missing_workload_program_blames_header() {
    let dir = scratch("noprimes");
    write(
        &dir.join("m.toml"),
        "[scenario]\nname = \"t\"\n\n[workload]\nkind = \"primes\"\nlo = 0\nhi = 10\nexpected = 4\nworkers = 1\nmode = \"thread\"\n",
    );
    assert_fails(
        &mkimage(&dir, &build_args(&[])),
        &["m.toml:4:1: program \"primes\" not found in programs"],
    );
}

#[test]
fn build_refuses_non_elf() {
    let dir = scratch("notelf");
    write(&dir.join("m.toml"), WITH_PROGRAM);
    write(&dir.join("programs/hello"), "#!/bin/sh\necho hi\n");
    assert_fails(
        &mkimage(&dir, &build_args(&[])),
        &["programs/hello: bad program ELF: not an ELF file"],
    );
}

#[test]
fn build_refuses_32_bit_elf() {
    let dir = scratch("elf32");
    write(&dir.join("m.toml"), WITH_PROGRAM);
    let mut elf = good_elf();
    elf[4] = 1; // ELFCLASS32
    write(&dir.join("programs/hello"), elf);
    assert_fails(
        &mkimage(&dir, &build_args(&[])),
        &["programs/hello: bad program ELF: not a 64-bit ELF"],
    );
}

#[test]
fn build_refuses_kernel_half_segment() {
    let dir = scratch("kernelhalf");
    write(&dir.join("m.toml"), WITH_PROGRAM);
    let code = [0xc3u8; 8];
    let vaddr = 0xffff_8000_0000_0000;
    let elf = make_elf(
        vaddr,
        &[Seg {
            vaddr,
            flags: PF_R | PF_X,
            bytes: &code,
            mem_len: 8,
        }],
    );
    write(&dir.join("programs/hello"), elf);
    assert_fails(
        &mkimage(&dir, &build_args(&[])),
        &["programs/hello: bad program ELF: segment at 0xffff800000000000 outside the user image area 0x400000..0x100000000000"],
    );
}

#[test]
fn build_reports_all_bad_programs() {
    let dir = scratch("allbad");
    write(
        &dir.join("m.toml"),
        "[scenario]\nname = \"t\"\n[[program]]\nname = \"a\"\n[[program]]\nname = \"b\"\n[[program]]\nname = \"c\"\n",
    );
    write(&dir.join("programs/a"), "x");
    write(&dir.join("programs/c"), good_elf());
    assert_fails(
        &mkimage(&dir, &build_args(&[])),
        &[
            "programs/a: bad program ELF: not an ELF file",
            "m.toml:6:8: program \"b\" not found in programs",
        ],
    );
}

#[test]
fn build_invalid_manifest_reports_manifest_errors() {
    let dir = scratch("badmanifest");
    write(
        &dir.join("m.toml"),
        "[scenario]\nname = \"t\"\n[[program]]\nname = \"hello\"\ncaps = [\"timer\", \"timer\"]\n",
    );
    write(&dir.join("programs/hello"), good_elf());
    assert_fails(
        &mkimage(&dir, &build_args(&[])),
        &["m.toml:5:18: duplicate capability \"timer\""],
    );
}

const FULL_WORKLOAD: &str = "[scenario]\nname = \"scale\"\ndescription = \"d\"\ntimeout_ms = 9000\n\
    [[program]]\nname = \"hello\"\nargs = [\"-v\", \"x y\"]\ncaps = [\"console\", \"stats\"]\nexpect = \"fault\"\n\
    [workload]\nkind = \"primes\"\nlo = 0\nhi = 1_000\nexpected = 168\nworkers = \"cpus\"\nmode = \"thread\"\nrepeat = 2\n";

#[test]
fn build_inspect_round_trip_with_repeat_override() {
    let dir = scratch("roundtrip");
    write(&dir.join("m.toml"), FULL_WORKLOAD);
    let elf = good_elf();
    write(&dir.join("programs/hello"), &elf);
    write(&dir.join("programs/primes"), &elf);
    let o = mkimage(&dir, &build_args(&["--repeat", "7"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let bytes = std::fs::read(dir.join("out.initrd")).expect("initrd written");
    let payload = abi::initrd::decode(&bytes).expect("decodes");
    let m = &payload.manifest;
    assert_eq!(m.scenario.name, "scale");
    assert_eq!(m.scenario.timeout_ms, Some(9000));
    assert_eq!(m.programs[0].args, ["-v", "x y"]);
    assert_eq!(
        m.programs[0].caps,
        [abi::caps::CapKind::Console, abi::caps::CapKind::Stats]
    );
    assert_eq!(m.programs[0].expect, abi::manifest::Expect::Fault);
    let w = m.workload.expect("workload");
    assert_eq!((w.hi, w.expected, w.repeat), (1000, 168, 7));
    assert_eq!(w.workers, abi::manifest::Workers::Cpus);
    let names: Vec<&str> = payload.programs.iter().map(|p| p.name).collect();
    assert_eq!(names, ["hello", "primes"]);
    assert_eq!(payload.program("primes").map(|p| p.elf), Some(&elf[..]));

    let o = mkimage(&dir, &["inspect", "out.initrd"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "scenario name=scale",
        "  description=\"d\"",
        "  timeout_ms=9000",
        "program index=0 name=hello args=[\"-v\", \"x y\"] caps=[console,stats] expect=fault kernel_kib=32768",
        "workload kind=primes lo=0 hi=1000 expected=168 workers=cpus mode=thread repeat=7 serialize=false",
        &format!("image name=primes bytes={}", elf.len()),
        "  entry=0x401000",
        "  segment vaddr=0x401000 mem_bytes=0x3 file_offset=0x1000 file_bytes=0x3 flags=r-x",
        "  segment vaddr=0x402000 mem_bytes=0x2000 file_offset=0x2000 file_bytes=0x4 flags=rw-",
    ] {
        assert!(text.lines().any(|l| l == want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn build_without_override_keeps_repeat_and_ignores_repeat_without_workload() {
    let dir = scratch("keeprepeat");
    write(&dir.join("m.toml"), FULL_WORKLOAD);
    write(&dir.join("programs/hello"), good_elf());
    write(&dir.join("programs/primes"), good_elf());
    assert_eq!(mkimage(&dir, &build_args(&[])).status.code(), Some(0));
    let bytes = std::fs::read(dir.join("out.initrd")).expect("initrd written");
    let payload = abi::initrd::decode(&bytes).expect("decodes");
    assert_eq!(payload.manifest.workload.map(|w| w.repeat), Some(2));

    write(&dir.join("m.toml"), WITH_PROGRAM);
    let o = mkimage(&dir, &build_args(&["--repeat=5"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = std::fs::read(dir.join("out.initrd")).expect("initrd written");
    let payload = abi::initrd::decode(&bytes).expect("decodes");
    assert_eq!(payload.manifest.workload, None);
    assert_eq!(payload.programs.len(), 1);
}

#[test]
fn inspect_corrupt_initrd() {
    let dir = scratch("corrupt");
    write(&dir.join("m.toml"), WITH_PROGRAM);
    write(&dir.join("programs/hello"), good_elf());
    assert_eq!(mkimage(&dir, &build_args(&[])).status.code(), Some(0));
    let mut bytes = std::fs::read(dir.join("out.initrd")).expect("initrd written");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    write(&dir.join("bad.initrd"), &bytes);
    let o = mkimage(&dir, &["inspect", "bad.initrd"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("bad.initrd: initrd checksum mismatch"),
        "{err}"
    );

    write(&dir.join("short.initrd"), b"CAPK");
    assert_fails(
        &mkimage(&dir, &["inspect", "short.initrd"]),
        &["short.initrd: initrd shorter than its 32-byte header"],
    );
    let o = mkimage(&dir, &["inspect", "none.initrd"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("none.initrd: cannot read: "));
}

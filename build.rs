//! Two link-time settings of the `tune` binary, both for start-up time (README,
//! Benchmark), both for binaries only (`rustc-link-arg-bins`: not the library, not the
//! test binaries, not proc-macros).
//!
//! **The unwinder is linked statically**, as `gcc -static-libgcc` does for C. On
//! linux-gnu the Rust standard library asks for `-lgcc_s`, so every run loads
//! libgcc_s.so.1 and runs its constructor, which issues twelve CPUID instructions: each
//! one exits to the hypervisor on a virtual machine (3.9 µs each on the development
//! VM): 78 µs a run of a Rust hello there, and 0.3 ms of a sysctl-path plan.
//! Release builds abort on panic and need the unwinder only for backtraces. A
//! directory is put first on the linker's search path holding a `libgcc_s.so` that is
//! a linker script naming gcc's static `libgcc_eh.a` (proc-macros unwind through
//! rustc's own libgcc_s, so they are left alone). Where the C compiler does not know
//! `libgcc_eh.a`, the build is static already (`+crt-static` links it anyway) or it is
//! a cross build, nothing changes.
//!
//! **The functions a plan runs come first in `.text`**: `link/hot-functions.txt`
//! (`hot-functions-static.txt` for the static build; both made by
//! `link/regenerate.sh`) is lld's `--symbol-ordering-file`, so the code a plan
//! executes sits in about 1 MiB at the start of the text instead of across its 6 MiB,
//! and each page fault on it (the kernel maps 64 KiB around the faulting address) maps
//! code the run needs. Only where the linker is the toolchain's own lld (rustc 1.90 and
//! later on x86_64-unknown-linux-gnu, with no linker chosen in RUSTFLAGS or cargo's
//! config); a name the build no longer has is skipped without a warning, so a stale
//! list costs speed, never the build.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn var(name: &str) -> String {
    env::var(name).unwrap_or_default()
}

/// Whether the C runtime is linked statically (the static build).
fn static_crt() -> bool {
    var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static")
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    hot_functions_first();
    static_libgcc();
}

/// `-L` a directory whose `libgcc_s.so` names `libgcc_eh.a`, where that applies.
fn static_libgcc() {
    // A cross build's linker would need its own libgcc_eh.a; leave it as it is.
    let native = var("TARGET") == var("HOST");
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || static_crt()
        || !native
    {
        return;
    }
    let linker = env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into());
    // `-print-file-name` prints the full path of a file it finds, the bare name if not.
    let Some(gcc_eh) = Command::new(&linker)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|path| path.is_absolute() && path.is_file())
    else {
        println!("cargo:warning=libgcc_eh.a not found by {linker}: tune links libgcc_s.so.1");
        return;
    };
    let dir = PathBuf::from(var("OUT_DIR")).join("static-libgcc");
    let script = format!("INPUT({})\n", gcc_eh.display());
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join("libgcc_s.so"), script))
    {
        println!("cargo:warning=cannot write the libgcc_s.so linker script: {e}");
        return;
    }
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
}

/// `--symbol-ordering-file link/hot-functions.txt` (`-static.txt` for the static
/// build, whose names differ), where the linker is rustc's lld.
fn hot_functions_first() {
    let name = if static_crt() {
        "link/hot-functions-static.txt"
    } else {
        "link/hot-functions.txt"
    };
    let list = PathBuf::from(var("CARGO_MANIFEST_DIR")).join(name);
    println!("cargo:rerun-if-changed={}", list.display());
    // rustc links x86_64-unknown-linux-gnu with its own lld since 1.90, through the C
    // compiler with `-fuse-ld=lld`; any linker chosen by hand may be another.
    let chosen = var("CARGO_ENCODED_RUSTFLAGS")
        .split('\x1f')
        .any(|flag| flag.contains("linker") || flag.contains("link-self-contained"));
    let rustc_minor = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let release = text.lines().find_map(|l| l.strip_prefix("release: "))?;
            let mut parts = release.split('.');
            (parts.next()? == "1").then_some(())?;
            parts.next()?.parse::<u32>().ok()
        });
    if var("TARGET") != "x86_64-unknown-linux-gnu"
        || env::var_os("RUSTC_LINKER").is_some()
        || chosen
        || rustc_minor.is_none_or(|minor| minor < 90)
        || !list.is_file()
    {
        return;
    }
    // -Xlinker, not -Wl: the C compiler would split the path at a comma.
    for arg in [
        "--no-warn-symbol-ordering".to_owned(),
        format!("--symbol-ordering-file={}", list.display()),
    ] {
        println!("cargo:rustc-link-arg-bins=-Xlinker");
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

//! Links the `tune` binary's unwinder statically, as `gcc -static-libgcc` does for C.
//!
//! On linux-gnu the Rust standard library asks for `-lgcc_s`, so every run loads
//! libgcc_s.so.1 and runs its constructor, which issues twelve CPUID instructions: each
//! one exits to the hypervisor on a virtual machine (3.9 µs each on the development
//! VM): 78 µs a run of a Rust hello there, and 0.3 ms of a sysctl-path plan (README,
//! Benchmark).
//! Release builds abort on panic and need the unwinder only for backtraces.
//!
//! For binaries only (`rustc-link-arg-bins`: not the library, not the test binaries,
//! not proc-macros, which unwind through rustc's own libgcc_s) a directory is put first
//! on the linker's search path holding a `libgcc_s.so` that is a linker script naming
//! gcc's static `libgcc_eh.a`. Where the C compiler does not know `libgcc_eh.a`, the
//! build is static already (`+crt-static` links it anyway) or it is a cross build,
//! nothing changes.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    // A cross build's linker would need its own libgcc_eh.a; leave it as it is.
    let native = var("TARGET") == var("HOST");
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || static_crt
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

//! The `tune` binary: a short dispatch into [`tune::cli`].

fn main() {
    std::process::exit(tune::cli::run());
}

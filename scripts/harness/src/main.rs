//! `harness`: boots scenario images in QEMU and judges them.
//!
//! Five subcommands (see `cli.rs` for the flags):
//!
//! - `run`: build (or take) one image, GRUB ISO or PVH kernel and initrd,
//!   boot it, stream the serial console, exit 0/1/2 by the guest's verdict
//!   (CONTRACTS.md section 1, `make run`);
//! - `debug`: the same image under QEMU's gdb stub (`make debug`);
//! - `test`: build and boot every smoke manifest under several CPU counts
//!   (`make test`);
//! - `scale`: the scaling benchmark (CONTRACTS.md section 5);
//! - `soak`: every smoke manifest many times (`make soak`).
//!
//! The guest-side protocol it reads is CONTRACTS.md section 4 (`parse.rs`).

mod cli;
mod fallback;
mod forged;
mod hole;
mod manifest;
mod mkiso;
mod native;
mod native_ring;
mod parse;
mod qemu;
mod report;
mod runner;
mod scale;
mod smoke;
mod soak;
mod stats;
mod svg;
mod verdict;

use std::process::ExitCode;

/// Exit status for errors of the harness itself (bad flags, missing files):
/// the same "no verdict" status as a guest that never answered.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("harness: {e:#}");
            eprintln!("{}", cli::USAGE);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = match command {
        cli::Command::Help => {
            println!("{}", cli::USAGE);
            Ok(0)
        }
        cli::Command::Run(opts) => runner::run_command(&opts),
        cli::Command::Debug(opts) => runner::debug_command(&opts),
        cli::Command::Test(opts) => smoke::test_command(&opts),
        cli::Command::Scale(opts) => scale::scale_command(&opts),
        cli::Command::Soak(opts) => soak::soak_command(&opts),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("harness: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

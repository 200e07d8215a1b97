//! The `kern` command (see `kern --help`).

fn main() -> std::process::ExitCode {
    kern_cli::main()
}

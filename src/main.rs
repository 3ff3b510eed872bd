//! The `gradspec` command line. All logic lives in the library; see `gradspec::cli`.
fn main() -> std::process::ExitCode {
    gradspec::cli::main()
}

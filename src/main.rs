use std::process::ExitCode;

fn main() -> ExitCode {
    detective::cli::install_panic_hook();
    match detective::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

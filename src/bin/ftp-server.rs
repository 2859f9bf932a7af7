//! `ftp-server`: serves uploads and downloads to clients that know the
//! secret. The program is [`ftp::app::server`].

fn main() -> std::process::ExitCode {
    ftp::app::server::main()
}

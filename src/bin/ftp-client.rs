//! `ftp-client`: uploads, downloads and lists files on an ftp-server. The
//! program is [`ftp::app::client`].

fn main() -> std::process::ExitCode {
    ftp::app::client::main()
}

//! The listening socket and the descriptors it needs: a large backlog,
//! socket options every accepted connection inherits, and the open-file
//! limit fitted to the connections wanted.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::descriptors::{raise_open_file_limit, SPARE_FDS};
use crate::logging::{Event, Kind};

/// Pending connections the kernel queues for us (capped by
/// `net.core.somaxconn`). std's default of 128 drops bursts of clients.
pub(crate) const LISTEN_BACKLOG: i32 = 4096;

/// The descriptor held in reserve for `Server::refuse_with_spare_fd`.
pub(super) fn open_spare_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Whether an error means the process or the system has no descriptor left.
pub(super) fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Raises the soft limit on open files to the hard one, and returns
/// `wanted` connections, or fewer if the limit cannot hold them: their
/// sockets get half of the descriptors after a reserve, and what replies
/// hold open the other half ([`super::descriptors`]). Lowering a number
/// the operator gave (`explicit`) is a warning; lowering the default is
/// only noted.
pub(crate) fn fit_to_fd_limit(wanted: usize, explicit: bool) -> usize {
    let open_files = raise_open_file_limit();
    if open_files == u64::MAX {
        return wanted;
    }
    let fits = usize::try_from(open_files.saturating_sub(SPARE_FDS) / 2).unwrap_or(usize::MAX);
    let fits = fits.max(1);
    if wanted <= fits {
        return wanted;
    }
    if explicit {
        Event::new(Kind::Warning).warn(format_args!(
            "--max-connections lowered from {wanted} to {fits} to fit the open-file limit of \
             {open_files} (raise it with ulimit -n)"
        ));
    } else {
        Event::new(Kind::Start).info(format_args!(
            "serving up to {fits} connections, what the open-file limit of {open_files} allows"
        ));
    }
    fits
}

/// Receive buffer for servers with anonymous uploads. The seed's FtpClient
/// never reads the challenge, so its close resets the connection, and its
/// kernel drops whatever it had not sent yet; bytes already in our receive
/// buffer stay readable. A buffer this large holds a whole small upload.
const ANONYMOUS_RCVBUF: usize = 4 * 1024 * 1024;

/// Where the server listens.
#[derive(Debug)]
pub(crate) enum Bind {
    /// An address to bind.
    Addr(SocketAddr),
    /// A socket listening already, passed by systemd's socket activation
    /// (`LISTEN_FDS`), so that connections made while the server restarts
    /// wait in its backlog.
    Passed(TcpListener),
}

impl std::fmt::Display for Bind {
    /// What the server was doing with it, for an error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bind::Addr(addr) => write!(f, "listening on {addr}"),
            Bind::Passed(_) => f.write_str("taking the socket systemd passed (LISTEN_FDS)"),
        }
    }
}

pub(super) fn listen(at: Bind, anonymous: bool, idle: Duration) -> io::Result<TcpListener> {
    let addr = match at {
        Bind::Addr(addr) => addr,
        Bind::Passed(listener) => {
            // Someone else's socket, taken as if it were our own: the
            // same options, which accepted sockets inherit, and the read
            // timeout the accept loop relies on to look at its stop flag.
            let socket = socket2::SockRef::from(&listener);
            let listening = rustix::net::sockopt::socket_acceptconn(&listener)?;
            if !listening || socket.r#type()? != Type::STREAM {
                let not = "not a listening TCP socket";
                return Err(io::Error::new(io::ErrorKind::InvalidInput, not));
            }
            configure(&socket, anonymous, idle)?;
            return Ok(listener);
        }
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    configure(&socket, anonymous, idle)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

fn configure(socket: &Socket, anonymous: bool, idle: Duration) -> io::Result<()> {
    crate::net::tcp::configure_listener(socket, idle)?;
    if anonymous {
        // Inherited by every accepted socket. It turns off autotuning,
        // so only servers that need it get it.
        socket.set_recv_buffer_size(ANONYMOUS_RCVBUF)?;
    }
    Ok(())
}

//! systemd's readiness notification (Type=notify): one datagram to $NOTIFY_SOCKET, so that units
//! ordered after ours (docker.service) start once the policy is in place.

use std::os::unix::net::{SocketAddr, UnixDatagram};

pub fn notify_ready(status: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let address = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => SocketAddr::from_pathname(&path),
    };
    let status: String = status.chars().filter(|c| *c != '\n').take(200).collect();
    let message = format!("READY=1\nSTATUS={status}\n");
    if let (Ok(socket), Ok(address)) = (UnixDatagram::unbound(), address) {
        let _ = socket.send_to_addr(message.as_bytes(), &address);
    }
}

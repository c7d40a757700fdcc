//! netfilter's change notifications: every nftables transaction (iptables-nft, nft, firewalld)
//! is multicast to NFNLGRP_NFTABLES listeners in the namespace. The legacy backend sends none:
//! there the periodic resync is the net.

use super::Trigger;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use std::sync::mpsc::Sender;

/// linux/netfilter/nfnetlink.h
const NFNLGRP_NFTABLES: u32 = 7;
/// errno: the socket's buffer overran (Linux).
const ENOBUFS: i32 = 105;

pub fn spawn(tx: Sender<Trigger>) {
    let socket = match subscribe() {
        Ok(socket) => socket,
        Err(e) => {
            let _ = tx.send(Trigger::Note(format!(
                "no netfilter change notifications ({e}); changes are found by the periodic resync"
            )));
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("netfilter".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                // The content does not matter (the converge reads the ruleset); an overrun
                // (ENOBUFS) means we missed some, which is a change too.
                let received = socket.recv(&mut &mut buffer[..], 0);
                if let Err(e) = &received
                    && e.raw_os_error() != Some(ENOBUFS)
                {
                    let _ = tx.send(Trigger::Note(format!(
                        "netfilter notifications stopped ({e}); the periodic resync goes on"
                    )));
                    return;
                }
                if tx.send(Trigger::Netfilter).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("docker_firewall watch: cannot start the netfilter thread: {e}");
    }
}

fn subscribe() -> std::io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    socket.add_membership(NFNLGRP_NFTABLES)?;
    Ok(socket)
}

//! Port reservation: the host ports a container is to get are bound here, before conmon
//! starts, and handed to conmon, which holds them as long as it lives (it keeps every
//! descriptor it was started with). Nothing else on the host can take them meanwhile, and they
//! are free again once conmon ends with its container, as podman reserves them.
//!
//! A TCP port is held by a listening socket, a UDP port by a bound one. SCTP is not reserved
//! (as in podman): a warning says so and the port is left alone. A port another socket holds
//! is [`Error::PortInUse`], found before any process starts.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;

use runtime_core::{Error, PortProtocol, PortReservation, Result};

/// Binds every TCP and UDP port of `ports`; the descriptors hold them (close-on-exec until
/// they are handed to conmon).
pub(crate) fn reserve(ports: &[PortReservation]) -> Result<Vec<OwnedFd>> {
    let mut held = Vec::with_capacity(ports.len());
    let mut warned_about_sctp = false;
    for reservation in ports {
        let address = SocketAddr::new(reservation.host_ip, reservation.port);
        let (protocol, bound) = match reservation.protocol {
            PortProtocol::Tcp => ("tcp", TcpListener::bind(address).map(OwnedFd::from)),
            PortProtocol::Udp => ("udp", UdpSocket::bind(address).map(OwnedFd::from)),
            PortProtocol::Sctp => {
                if !warned_about_sctp {
                    warned_about_sctp = true;
                    tracing::warn!(%address, "port reservation for SCTP is not supported; the port is not held");
                }
                continue;
            }
        };
        match bound {
            Ok(fd) => held.push(fd),
            Err(source) if source.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(Error::PortInUse { protocol, address, source });
            }
            Err(source) => return Err(Error::Io { context: format!("reserving {protocol} port {address}"), source }),
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn port(protocol: PortProtocol, port: u16) -> PortReservation {
        PortReservation { protocol, host_ip: LOCALHOST, port }
    }

    /// A port free a moment ago: the kernel's pick for port 0.
    fn free_port() -> u16 {
        TcpListener::bind((LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
    }

    #[test]
    fn reserved_tcp_and_udp_ports_are_held_until_the_descriptors_close() {
        let number = free_port();
        let held = reserve(&[port(PortProtocol::Tcp, number), port(PortProtocol::Udp, number)]).unwrap();
        assert_eq!(held.len(), 2);
        let tcp = TcpListener::bind((LOCALHOST, number)).unwrap_err();
        assert_eq!(tcp.kind(), std::io::ErrorKind::AddrInUse);
        let udp = UdpSocket::bind((LOCALHOST, number)).unwrap_err();
        assert_eq!(udp.kind(), std::io::ErrorKind::AddrInUse);
        drop(held);
        TcpListener::bind((LOCALHOST, number)).expect("free again");
    }

    #[test]
    fn sctp_is_not_bound() {
        assert!(reserve(&[port(PortProtocol::Sctp, free_port())]).unwrap().is_empty());
    }

    #[test]
    fn a_port_in_use_is_port_in_use_and_holds_nothing() {
        let taken = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let number = taken.local_addr().unwrap().port();
        let other = free_port();
        let refused = reserve(&[port(PortProtocol::Tcp, other), port(PortProtocol::Tcp, number)]);
        match refused {
            Err(Error::PortInUse { protocol, address, .. }) => {
                assert_eq!((protocol, address), ("tcp", SocketAddr::new(LOCALHOST, number)));
            }
            other => panic!("expected PortInUse, got {other:?}"),
        }
        TcpListener::bind((LOCALHOST, other)).expect("the port bound before the refusal is free again");
    }
}

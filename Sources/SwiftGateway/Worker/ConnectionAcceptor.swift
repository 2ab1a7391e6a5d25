import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwiftGatewayLinux

/// Accepts connections on the group socket, one per free request slot, and checks each peer.
///
/// It runs on a thread of its own and blocks in `poll`: a worker whose slots are all taken
/// does not even wait for connections, so the kernel hands them to an idle sibling.
struct ConnectionAcceptor: Sendable {
    let listener: CInt
    let slots: RequestSlots
    let allowedPeerUID: UInt32?
    let logger: Logger

    /// Loops until a termination signal arrives on `SignalPipe`, passing each accepted,
    /// verified descriptor to `accepted` (which owns it and must release the slot when done).
    func run(accepted: (CInt) -> Void) {
        while true {
            while !self.slots.take(timeout: 0.25) {
                if self.terminationRequested() { return }
            }
            guard let descriptor = self.acceptVerifiedConnection() else {
                self.slots.release()
                return
            }
            accepted(descriptor)
        }
    }

    /// Waits for a connection from an allowed peer; nil when told to stop.
    private func acceptVerifiedConnection() -> CInt? {
        while true {
            var descriptors = [
                pollfd(fd: self.listener, events: Int16(POLLIN), revents: 0),
                pollfd(fd: SignalPipe.descriptor, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                self.logger.critical("SG1107: poll on the group socket failed: \(SystemCallError("poll"))")
                return nil
            }
            if descriptors[1].revents != 0, self.terminationRequested() { return nil }
            if descriptors[0].revents & Int16(POLLNVAL | POLLERR) != 0 {
                self.logger.critical("SG1108: the group socket (fd \(self.listener)) is not usable: stopping")
                return nil
            }
            guard descriptors[0].revents & Int16(POLLIN) != 0 else { continue }
            let descriptor = sg_accept_cloexec_nonblock(self.listener)
            if descriptor < 0 {
                switch errno {
                case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED, EPROTO:
                    continue  // a sibling took it, or the client gave up
                default:
                    self.logger.error("SG1109: accept on the group socket failed: \(SystemCallError("accept4")); retrying")
                    usleep(100_000)
                    continue
                }
            }
            if self.isAllowed(descriptor) { return descriptor }
            close(descriptor)
        }
    }

    /// Only Apache's children may talk to a worker: their uid is `SWIFT_GATEWAY_PEER_UID`.
    private func isAllowed(_ descriptor: CInt) -> Bool {
        guard let expected = self.allowedPeerUID else { return true }
        guard let peer = PeerCredentials(socket: descriptor) else {
            self.logger.error("SG1110: refused a connection: the kernel reports no peer credentials")
            return false
        }
        guard peer.uid == expected else {
            self.logger.error("SG1111: refused a connection from pid \(peer.pid) uid \(peer.uid): only uid \(expected) (Apache's User) may connect")
            return false
        }
        return true
    }

    private func terminationRequested() -> Bool {
        let signals = SignalPipe.drain()
        guard let first = signals.first else { return false }
        self.logger.info("SG1112: received \(signalName(first)): no longer accepting, finishing requests in flight")
        return true
    }
}

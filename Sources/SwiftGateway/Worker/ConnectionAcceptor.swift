import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwiftGatewayLinux

/// Accepts connections on the group socket while a request slot is free, and checks each peer.
///
/// It runs on a thread of its own. While every slot runs a request it does not even poll, so the
/// kernel hands new connections to a sibling; when the connections are all open, a connection
/// waiting in the backlog makes it reclaim the oldest idle one. It also reads the signals: a
/// termination signal ends its loop; SIGUSR2 (the supervisor gave up on requests) makes it tell
/// the handler of each request named on the scoreboard, on that connection's event loop, even
/// while the loop is busy with an application that does not suspend (the event waits for it).
struct ConnectionAcceptor: Sendable {
    let listener: CInt
    let slots: ConnectionSlots
    let allowedPeerUID: UInt32?
    let logger: Logger

    /// How long a reclaimed connection may take to close before the backlog is looked at again.
    private static let reclaimWait = 0.1
    /// How often a worker whose slots all run looks for a signal.
    private static let signalCheckInterval = 0.01

    /// Loops until a termination signal arrives on `SignalPipe`, passing each accepted,
    /// verified descriptor to `accepted` (which owns it and its slot).
    func run(accepted: (CInt) -> Void) {
        while true {
            // While every slot runs, signals are looked for every 10 ms: a saturated worker that is
            // recycled must stop accepting at once (the group's next recycle waits for it to
            // exit), and one whose requests hang is where the supervisor gives up on them.
            while !self.slots.waitForRoom(orIdle: true, timeout: Self.signalCheckInterval) {
                if self.terminationRequested() { return }
            }
            switch self.waitForConnection() {
            case .stop:
                return
            case .nothing:
                continue
            case .pending:
                break
            }
            guard self.slots.tryTake() else {
                // The connections are all open, some idle: free the oldest for the newcomer. (When
                // a request took the last free slot meanwhile, the loop waits for one instead.)
                if self.slots.connectionsAreAllOpen, let idle = self.slots.takeOldestIdle() {
                    idle.pipeline.fireUserInboundEventTriggered(ReclaimIdleConnection())
                    _ = self.slots.waitForRoom(orIdle: false, timeout: Self.reclaimWait)
                }
                continue
            }
            guard let descriptor = self.acceptVerifiedConnection() else {
                self.slots.release()
                continue
            }
            accepted(descriptor)
        }
    }

    private enum Readiness {
        case pending
        case nothing
        case stop
    }

    /// Waits for a connection in the backlog or a termination signal.
    private func waitForConnection() -> Readiness {
        var descriptors = [
            pollfd(fd: self.listener, events: Int16(POLLIN), revents: 0),
            pollfd(fd: SignalPipe.descriptor, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&descriptors, 2, -1)
        if ready < 0 {
            if errno == EINTR { return .nothing }
            self.logger.critical("SG1107: poll on the group socket failed: \(SystemCallError("poll"))")
            return .stop
        }
        if descriptors[1].revents != 0, self.terminationRequested() { return .stop }
        if descriptors[0].revents & Int16(POLLNVAL | POLLERR) != 0 {
            self.logger.critical("SG1108: the group socket (fd \(self.listener)) is not usable: stopping")
            return .stop
        }
        return descriptors[0].revents & Int16(POLLIN) != 0 ? .pending : .nothing
    }

    /// Accepts the waiting connection if it comes from an allowed peer; nil when a sibling took
    /// it first, the client gave up, or the peer was refused.
    func acceptVerifiedConnection() -> CInt? {
        let descriptor = sg_accept_cloexec_nonblock(self.listener)
        if descriptor < 0 {
            switch errno {
            case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED, EPROTO:
                break
            default:
                self.logger.error("SG1109: accept on the group socket failed: \(SystemCallError("accept4")); retrying")
                usleep(100_000)
            }
            return nil
        }
        if self.isAllowed(descriptor) { return descriptor }
        close(descriptor)
        return nil
    }

    /// Whether a connection waits in the backlog of `listener`, without waiting.
    static func hasWaitingConnection(_ listener: CInt) -> Bool {
        var descriptor = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0 && descriptor.revents & Int16(POLLIN) != 0
    }

    /// Only Apache's children may talk to a worker: their uid is `SWIFT_GATEWAY_PEER_UID`.
    private func isAllowed(_ descriptor: CInt) -> Bool {
        guard let expected = self.allowedPeerUID else { return true }
        guard let peer = PeerCredentials(socket: descriptor) else {
            self.logger.error("SG1110: refused a connection: the kernel reports no peer credentials")
            return false
        }
        guard peer.uid == expected else {
            self.logger.error(
                "SG1111: refused a connection from pid \(peer.pid) uid \(peer.uid): only uid \(expected) (Apache's User) may connect"
            )
            return false
        }
        return true
    }

    /// Reads the signals that arrived: true on a termination signal; SIGUSR2 cancels requests.
    private func terminationRequested() -> Bool {
        let signals = SignalPipe.drain()
        if signals.contains(SIGUSR2) { self.cancelRequests() }
        guard let termination = signals.first(where: { $0 != SIGUSR2 }) else { return false }
        self.logger.info(
            "SG1112: received \(signalName(termination)): no longer accepting, finishing requests in flight")
        return true
    }

    /// While draining (the loop has returned): acts on SIGUSR2, ignores the rest.
    func cancelRequestsIfSignalled() {
        if SignalPipe.drain().contains(SIGUSR2) { self.cancelRequests() }
    }

    /// Tells the handler of each request the supervisor gave up on.
    private func cancelRequests() {
        for (slot, channel) in self.slots.cancelledRequests() {
            channel.pipeline.fireUserInboundEventTriggered(CancelRequest(slot: slot))
        }
    }
}

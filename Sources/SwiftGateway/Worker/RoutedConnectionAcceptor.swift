import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Accepts, on the worker's own socket, the connections of requests whose affinity cookie names
/// this worker (`affinity-cookie=`), and checks each peer as on the group socket.
///
/// The socket is in Linux's abstract namespace (`WorkerRoute.socketName`): the worker binds it
/// and listens itself, so the kernel reports the worker's pid to Apache (`SO_PEERCRED`), which
/// checks it against the route; the kernel removes the name when the worker's last descriptor of
/// it closes, so a worker gone, however it ended, leaves nothing behind. Unlike the group socket
/// it accepts while every slot runs: a routed request waits for this worker (its first request
/// is queued like any other, up to `queue-timeout`), never for a sibling. It runs on a thread
/// of its own until the worker drains (`stop`).
struct RoutedConnectionAcceptor: Sendable {
    let listener: CInt
    let slots: ConnectionSlots
    /// The group socket's acceptor, for its peer check.
    let peerCheck: ConnectionAcceptor
    let logger: Logger

    init(listener: CInt, slots: ConnectionSlots, allowedPeerUID: UInt32?, logger: Logger) {
        self.listener = listener
        self.slots = slots
        self.peerCheck = ConnectionAcceptor(
            listener: listener, slots: slots, allowedPeerUID: allowedPeerUID, logger: logger)
        self.logger = logger
    }

    /// Binds and listens on the abstract socket `name`; nil (logged) when it cannot.
    static func listen(name: String, backlog: Int32, logger: Logger) -> CInt? {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            logger.error("SG1124: cannot create this worker's own socket: \(SystemCallError("socket"))")
            return nil
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let nameBytes = Array(name.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard nameBytes.count + 1 <= capacity else {
            close(descriptor)
            return nil
        }
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path[0] = 0 // the abstract namespace
            for (index, byte) in nameBytes.enumerated() { path[index + 1] = byte }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + 1 + nameBytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0, Glibc.listen(descriptor, backlog) == 0 else {
            logger.error(
                "SG1124: cannot listen on this worker's own socket @\(name): \(SystemCallError("bind/listen")); requests routed here go to the group socket"
            )
            close(descriptor)
            return nil
        }
        return descriptor
    }

    /// Loops until `stop`, passing each accepted, verified descriptor to `accepted` (which owns
    /// it and its count in the slots' connections). Then closes the socket: the connections
    /// still in its backlog are reset, and Apache sends their requests to the group socket
    /// at once rather than after this worker's drain.
    func run(accepted: (CInt) -> Void) {
        defer { close(self.listener) }
        while true {
            var descriptor = pollfd(fd: self.listener, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, -1) < 0 {
                if errno == EINTR { continue }
                self.logger.error("SG1125: poll on this worker's own socket failed: \(SystemCallError("poll"))")
                return
            }
            if self.slots.isDraining || descriptor.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { return }
            guard descriptor.revents & Int16(POLLIN) != 0 else { continue }
            self.slots.takeRouted()
            guard let connection = self.peerCheck.acceptVerifiedConnection() else {
                self.slots.release()
                continue
            }
            accepted(connection)
        }
    }

    /// The worker drains: its own socket refuses connections from now on (Apache sends the
    /// requests routed here to the group socket) and `run` returns.
    func stop() {
        shutdown(self.listener, Int32(SHUT_RDWR))
    }
}

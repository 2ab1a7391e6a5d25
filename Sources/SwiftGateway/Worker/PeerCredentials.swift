#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwiftGatewayLinux

/// The process on the other end of a Unix socket, as the kernel reports it (SO_PEERCRED).
struct PeerCredentials: Equatable, Sendable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32

    /// Reads the credentials of `descriptor`'s peer; nil if the kernel gives none.
    init?(socket descriptor: CInt) {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        guard sg_peer_credentials(descriptor, &pid, &uid, &gid) == 0 else { return nil }
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

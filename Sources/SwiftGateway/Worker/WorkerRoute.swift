/// What names this worker in an affinity cookie (`affinity-cookie=`), and its own socket.
///
/// 24 bytes as 32 characters of base64url: the worker's pid (4 bytes, big-endian), its start
/// (8 bytes, microseconds since the epoch) and the first 12 bytes of HMAC-SHA1 over them, keyed
/// with the group's token and bound to the group's socket path, which names the group and the
/// Apache generation that made it. Apache's module checks it the same way (`sg_affinity.c`)
/// and connects to the worker's own socket, whose abstract name is made of it.
struct WorkerRoute: Equatable, Sendable {
    let pid: Int32
    let start: UInt64
    /// The cookie's value.
    let text: String

    static let identityBytes = 12
    static let macBytes = 12
    /// What the MAC covers before the group's socket path (with its NUL).
    static let label = Array("swift-gateway route".utf8) + [0]
    /// The start of the abstract name of a worker's own socket (after its leading NUL).
    static let socketPrefix = "swift-gateway/"

    init(token: String, socketPath: String, pid: Int32, start: UInt64) {
        self.pid = pid
        self.start = start
        var identity: [UInt8] = []
        identity.reserveCapacity(Self.identityBytes)
        let pidBits = UInt32(bitPattern: pid)
        for shift in stride(from: 24, through: 0, by: -8) {
            identity.append(UInt8(truncatingIfNeeded: pidBits >> UInt32(shift)))
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            identity.append(UInt8(truncatingIfNeeded: start >> UInt64(shift)))
        }
        let mac = SHA1.hmac(key: Array(token.utf8), message: Self.label + Array(socketPath.utf8) + [0] + identity)
        self.text = Self.base64URL(identity + mac.prefix(Self.macBytes))
    }

    /// The abstract name of the worker's own socket, without the leading NUL.
    var socketName: String { Self.socketPrefix + self.text }

    /// base64url without padding (RFC 4648 section 5).
    static func base64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var value = UInt32(0)
            for (offset, byte) in chunk.enumerated() { value |= UInt32(byte) << UInt32(16 - 8 * offset) }
            for sextet in 0..<(chunk.count + 1) { out.append(alphabet[Int(value >> UInt32(18 - 6 * sextet) & 0x3F)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

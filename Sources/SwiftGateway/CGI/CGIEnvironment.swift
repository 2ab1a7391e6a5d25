import NIOCore

/// The CGI/1.1 variables of one request (`SCRIPT_NAME`, `PATH_INFO`, `REMOTE_USER`, `HTTPS`,
/// `SetEnv` values, …): looked up by name like a dictionary, iterated in the order Apache sent them.
///
/// It keeps the bytes of the request's `FCGI_PARAMS` stream and where each name and value lies
/// in them; a variable becomes a `String` only when it is asked for, so reading a request costs
/// no string, no hashing and no reference count per variable.
///
/// Names are unique in what Apache sends. Should one repeat, the subscript answers the last
/// value, as a dictionary built in that order would, and iteration yields each.
///
/// The group's secret (`SWIFT_GATEWAY_TOKEN`) is held apart when the stream is read: the worker
/// checks it, the application never sees it.
public struct CGIEnvironment: Sendable {
    /// Where one variable lies in `bytes`, counted from its reader index.
    struct Entry: Sendable {
        var name: Range<Int>
        var value: Range<Int>
    }

    /// The stream and its index, behind one reference: a request head that carries the
    /// variables then fits NIO's inline storage, and each copy of it is one reference count.
    /// Immutable; a change makes a new one (applications rarely change their variables).
    private final class Storage: Sendable {
        let bytes: ByteBuffer
        let entries: [Entry]
        /// Where the last `SWIFT_GATEWAY_TOKEN` of the stream lies, if it had one.
        let token: Range<Int>?

        init(bytes: ByteBuffer, entries: [Entry], token: Range<Int>?) {
            self.bytes = bytes
            self.entries = entries
            self.token = token
        }
    }

    private var storage: Storage
    private var bytes: ByteBuffer { self.storage.bytes }
    private var entries: [Entry] { self.storage.entries }

    /// The variables of a complete `FCGI_PARAMS` stream; throws ``FastCGIError`` as
    /// ``FastCGINameValuePairs/decode(_:)`` does. The stream's bytes are kept, not copied.
    init(parameterStream: ByteBuffer) throws {
        var entries: [Entry] = []
        entries.reserveCapacity(32)
        var token: Range<Int>?
        try parameterStream.withUnsafeReadableBytes { bytes in
            try FastCGINameValuePairs.scan(bytes) { name, value in
                if Self.isTokenName(UnsafeRawBufferPointer(rebasing: bytes[name])) {
                    token = value
                } else {
                    entries.append(Entry(name: name, value: value))
                }
            }
        }
        self.storage = Storage(bytes: parameterStream, entries: entries, token: token)
    }

    /// The variables in `pairs`, in their order.
    public init<Pairs: Sequence>(_ pairs: Pairs) where Pairs.Element == (name: String, value: String) {
        var stream = ByteBuffer()
        FastCGINameValuePairs.encode(pairs, into: &stream)
        // Encoded just now from strings: valid by construction.
        do { try self.init(parameterStream: stream) } catch {
            preconditionFailure("re-reading encoded pairs failed: \(error)")
        }
    }

    /// The variables of a dictionary, in its (unspecified) order.
    public init(_ variables: [String: String]) {
        self.init(variables.lazy.map { (name: $0.key, value: $0.value) })
    }

    /// The value of the variable `name`, nil when the request has none. Setting a value replaces
    /// every variable of that name with one at the end; setting nil removes them.
    public subscript(name: String) -> String? {
        get { self.lastIndex(named: name).map { self.value(at: $0) } }
        set {
            var bytes = self.bytes
            var entries = self.entries
            var wanted = name
            wanted.withUTF8 { wanted in
                bytes.withUnsafeReadableBytes { bytes in
                    entries.removeAll(where: { Self.entry($0, in: bytes, isNamed: UnsafeRawBufferPointer(wanted)) })
                }
            }
            if let newValue {
                let start = bytes.readableBytes
                let nameLength = bytes.writeString(name)
                let valueLength = bytes.writeString(newValue)
                let name = start..<(start + nameLength)
                entries.append(Entry(name: name, value: name.upperBound..<(name.upperBound + valueLength)))
            }
            self.storage = Storage(bytes: bytes, entries: entries, token: self.storage.token)
        }
    }

    /// Removes the variables named `name`; answers the last one's value.
    @discardableResult
    public mutating func removeValue(forName name: String) -> String? {
        let value = self[name]
        if value != nil { self[name] = nil }
        return value
    }

    /// The variables as a dictionary; for a repeated name, its last value.
    public var dictionary: [String: String] {
        Dictionary(self.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    /// Whether the stream's `SWIFT_GATEWAY_TOKEN` has exactly the bytes of `secret`, compared in
    /// time independent of where they differ; false when it had none.
    func presentedToken(equals secret: [UInt8]) -> Bool {
        guard let token = self.storage.token else { return false }
        return self.bytes.withUnsafeReadableBytes { bytes in
            constantTimeEquals(UnsafeRawBufferPointer(rebasing: bytes[token]), secret)
        }
    }

    private static func isTokenName(_ name: UnsafeRawBufferPointer) -> Bool {
        // Lengths first, then memcmp: this runs for every variable of every request.
        name.hasSameBytes(as: "SWIFT_GATEWAY_TOKEN")
    }

    /// Calls `body` with the name of each variable as raw bytes, and its index.
    func forEachName(_ body: (UnsafeRawBufferPointer, Int) throws -> Void) rethrows {
        try self.bytes.withUnsafeReadableBytes { bytes in
            for (index, entry) in self.entries.enumerated() {
                try body(UnsafeRawBufferPointer(rebasing: bytes[entry.name]), index)
            }
        }
    }

    /// The value of the variable `name` as a decimal number, read from its bytes without making
    /// a string; nil when absent, empty, not all ASCII digits, or above `Int64.max`.
    func decimalValue(named name: String) -> Int64? {
        guard let index = self.lastIndex(named: name) else { return nil }
        let range = self.entries[index].value
        return self.bytes.withUnsafeReadableBytes { bytes -> Int64? in
            let digits = UnsafeRawBufferPointer(rebasing: bytes[range])
            guard !digits.isEmpty else { return nil }
            var value: Int64 = 0
            for byte in digits {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                let (shifted, overflowed) = value.multipliedReportingOverflow(by: 10)
                let (sum, carried) = shifted.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
                guard !overflowed, !carried else { return nil }
                value = sum
            }
            return value
        }
    }

    /// Calls `body` with the bytes of the value of the variable `name` (the last one of that name),
    /// without making a string; does nothing when the request has none. One pass over the
    /// buffer, lengths compared first: the worker runs it for every request (the URL path on
    /// the scoreboard).
    func withValueBytes(named name: StaticString, _ body: (UnsafeRawBufferPointer) -> Void) {
        let entries = self.entries
        self.bytes.withUnsafeReadableBytes { bytes in
            for entry in entries.reversed()
            where entry.name.count == name.utf8CodeUnitCount
                && UnsafeRawBufferPointer(rebasing: bytes[entry.name]).hasSameBytes(as: name)
            {
                body(UnsafeRawBufferPointer(rebasing: bytes[entry.value]))
                return
            }
        }
    }

    /// The value of the variable at `index`.
    func value(at index: Int) -> String {
        self.bytes.withUnsafeReadableBytes { FastCGINameValuePairs.string($0, self.entries[index].value) }
    }

    private func lastIndex(named name: String) -> Int? {
        // One pass with the name's bytes at hand: this runs for every variable read.
        var wanted = name
        return wanted.withUTF8 { wanted in
            self.bytes.withUnsafeReadableBytes { bytes in
                self.entries.lastIndex(where: { Self.entry($0, in: bytes, isNamed: UnsafeRawBufferPointer(wanted)) })
            }
        }
    }

    private static func entry(
        _ entry: Entry, in bytes: UnsafeRawBufferPointer, isNamed wanted: UnsafeRawBufferPointer
    ) -> Bool {
        // Lengths first: most entries differ there, and slicing costs nothing.
        entry.name.count == wanted.count && UnsafeRawBufferPointer(rebasing: bytes[entry.name]).hasSameBytes(as: wanted)
    }
}

extension CGIEnvironment: RandomAccessCollection {
    public typealias Element = (key: String, value: String)

    public var startIndex: Int { self.entries.startIndex }
    public var endIndex: Int { self.entries.endIndex }

    public subscript(position: Int) -> (key: String, value: String) {
        let entry = self.entries[position]
        return self.bytes.withUnsafeReadableBytes { bytes in
            (
                key: FastCGINameValuePairs.string(bytes, entry.name),
                value: FastCGINameValuePairs.string(bytes, entry.value)
            )
        }
    }
}

extension CGIEnvironment: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements.lazy.map { (name: $0.0, value: $0.1) })
    }
}

extension CGIEnvironment: Equatable {
    /// The same variables with the same values in the same order.
    public static func == (lhs: CGIEnvironment, rhs: CGIEnvironment) -> Bool {
        lhs.elementsEqual(rhs, by: { $0.key == $1.key && $0.value == $1.value })
    }
}

extension CGIEnvironment: CustomStringConvertible {
    public var description: String {
        "[" + self.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "]"
    }
}

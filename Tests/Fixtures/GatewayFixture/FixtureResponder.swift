import HTTPTypes
import NIOCore
import SwiftGateway

#if canImport(Glibc)
import Glibc
#endif

/// Every page carries the group and the worker's pid (`X-Gateway-Group`, `X-Gateway-Pid`): the
/// tests tell workers apart by them.
struct FixtureResponder: GatewayResponder {
    /// Fault pages exist only where the group asks for them (`env=SWIFT_GATEWAY_FIXTURE_FAULTS=1`).
    let faultsEnabled = getenv("SWIFT_GATEWAY_FIXTURE_FAULTS").map { String(cString: $0) } == "1"
    let pid = getpid()
    /// Made once: every page carries the pid.
    private let pidText = String(getpid())
    private static let groupField = HTTPField.Name("X-Gateway-Group")
    private static let pidField = HTTPField.Name("X-Gateway-Pid")
    /// Which build of the program this worker runs: the device and inode of its executable
    /// (tests install each version as its own file and tell them apart by these).
    private let versionText = Self.executableIdentity()

    nonisolated(nonsending) func respond(
        to request: GatewayRequest, context: GatewayContext
    ) async throws -> GatewayResponse {
        var response = try await self.page(for: request, context: context)
        if let group = Self.groupField, let pid = Self.pidField {
            // One copy of the page's fields with room for both, not a copy and a regrowth.
            response.headerFields.reserveCapacity(response.headerFields.count + 2)
            response.headerFields.append(HTTPField(name: group, value: context.group))
            response.headerFields.append(HTTPField(name: pid, value: self.pidText))
        }
        return response
    }

    private nonisolated(nonsending) func page(
        for request: GatewayRequest, context: GatewayContext
    ) async throws -> GatewayResponse {
        let path = request.pathInfo
        // The last non-empty segment, as a slice of the path: no array, no copy.
        let end =
            path.utf8.lastIndex(where: { $0 != UInt8(ascii: "/") }).map { path.utf8.index(after: $0) }
            ?? path.startIndex
        let start =
            path.utf8[..<end].lastIndex(of: UInt8(ascii: "/")).map { path.utf8.index(after: $0) } ?? path.startIndex
        let page = path[start..<end]
        switch page {
        case "hello": return Self.hello
        case "env": return self.environmentPage(request, context: context)
        case "echo": return self.echo(request)
        case "upload": return try await self.upload(request)
        case "bytes": return self.bytes(request)
        case "version": return self.text(self.versionText)
        case "drip": return self.drip(request)
        case "sendfile": return self.sendfile(request)
        case "log":
            context.logger.warning("fixture log line from \(context.group)")
            return self.text("logged\n")
        case "log-levels": return self.logLevels(context: context)
        case "crash", "segfault", "hang", "sleep", "leak", "never-return", "spin", "allocate":
            guard self.faultsEnabled else { return self.text("Not Found\n", status: .notFound) }
            return try await self.fault(String(page), request: request, context: context)
        default: return self.home(request, context: context)
        }
    }

    /// One line at each swift-log level, for the tests of the level mapping and `LogLevel`.
    private func logLevels(context: GatewayContext) -> GatewayResponse {
        let logger = context.logger
        logger.trace("fixture line at trace")
        logger.debug("fixture line at debug")
        logger.info("fixture line at info")
        logger.notice("fixture line at notice")
        logger.warning("fixture line at warning")
        logger.error("fixture line at error")
        logger.critical("fixture line at critical")
        return self.text("logged\n")
    }

    /// The 13-byte page `make bench` measures against a static file of the same bytes.
    private static let hello = GatewayResponse(
        status: .ok, headerFields: [.contentType: "text/plain"], body: .init(string: "Hello world!\n")
    )

    private func home(_ request: GatewayRequest, context: GatewayContext) -> GatewayResponse {
        self.text(
            """
            SwiftGateway test fixture
            group: \(context.group)
            pid: \(self.pid)
            script_name: \(request.scriptName)
            path_info: \(request.pathInfo)

            """
        )
    }

    private func environmentPage(_ request: GatewayRequest, context: GatewayContext) -> GatewayResponse {
        let variables = request.environment.sorted { $0.key < $1.key }
            .map { "\(jsonString($0.key)): \(jsonString($0.value))" }
            .joined(separator: ", ")
        let json = "{\"group\": \(jsonString(context.group)), \"pid\": \(self.pid), \"environment\": {\(variables)}}\n"
        return GatewayResponse(
            status: .ok, headerFields: [.contentType: "application/json"], body: .init(string: json)
        )
    }

    /// Writes each chunk back as soon as it is read: upload and download run at once.
    private func echo(_ request: GatewayRequest) -> GatewayResponse {
        GatewayResponse(
            status: .ok,
            headerFields: [.contentType: "application/octet-stream"],
            body: .stream { writer in
                for try await chunk in request.body {
                    try await writer.write(chunk)
                }
            }
        )
    }

    /// Reads the whole body, keeps none of it, and answers with its length.
    private func upload(_ request: GatewayRequest) async throws -> GatewayResponse {
        var total = 0
        for try await chunk in request.body { total += chunk.readableBytes }
        return self.text("\(total)\n")
    }

    /// 64 KiB of the /bytes pattern, made once: the page measures the gateway, not the filling.
    private static let pattern = ByteBuffer(bytes: (0..<65536).map { UInt8(truncatingIfNeeded: $0) })

    /// N bytes where byte i is i % 256, produced 64 KiB at a time.
    private func bytes(_ request: GatewayRequest) -> GatewayResponse {
        let count = queryValue("n", in: request.queryString).flatMap(Int.init) ?? 1024
        var fields: HTTPFields = [.contentType: "application/octet-stream"]
        fields[.contentLength] = String(max(0, count))
        return GatewayResponse(
            status: .ok,
            headerFields: fields,
            body: .stream { writer in
                let pattern = Self.pattern
                var remaining = max(0, count)
                while remaining > 0 {
                    let length = min(remaining, pattern.readableBytes)
                    try await writer.write(pattern.getSlice(at: pattern.readerIndex, length: length) ?? ByteBuffer())
                    remaining -= length
                }
            }
        )
    }

    /// `seconds` (default 5, at most 60) of one line every 100 ms, then "done": a long response
    /// in flight, for the tests of restarts and reloads.
    private func drip(_ request: GatewayRequest) -> GatewayResponse {
        let seconds = min(60, max(0, queryValue("seconds", in: request.queryString).flatMap(Double.init) ?? 5))
        let lines = Int((seconds * 10).rounded())
        return GatewayResponse(
            status: .ok,
            headerFields: [.contentType: "text/plain"],
            body: .stream { writer in
                for line in 0..<lines {
                    try await writer.write(ByteBuffer(string: "line \(line)\n"))
                    try await Task.sleep(for: .milliseconds(100))
                }
                try await writer.write(ByteBuffer(string: "done\n"))
            }
        )
    }

    /// 200 with `X-Sendfile: P` for `?path=P` (P as written, not percent-decoded) and no
    /// Content-Type unless `type=T` asks for one; `body=N` adds N bytes that Apache must discard.
    private func sendfile(_ request: GatewayRequest) -> GatewayResponse {
        let query = request.queryString
        var fields: HTTPFields = [:]
        if let name = HTTPField.Name("X-Sendfile") { fields[name] = queryValue("path", in: query) ?? "" }
        if let type = queryValue("type", in: query) { fields[.contentType] = type }
        let extra = max(0, queryValue("body", in: query).flatMap(Int.init) ?? 0)
        return GatewayResponse(
            status: .ok, headerFields: fields, body: .init(string: String(repeating: "x", count: extra)))
    }

    private static func executableIdentity() -> String {
        var status = stat()
        guard stat("/proc/self/exe", &status) == 0 else { return "unknown\n" }
        return "\(status.st_dev):\(status.st_ino)\n"
    }

    func text(_ body: String, status: HTTPResponse.Status = .ok) -> GatewayResponse {
        GatewayResponse(
            status: status, headerFields: [.contentType: "text/plain; charset=utf-8"], body: .init(string: body))
    }
}

import SwiftGateway

#if canImport(Glibc)
import Glibc
#endif

/// The pages that break on purpose, for the tests of crashes, timeouts and restarts.
extension FixtureResponder {
    func fault(_ page: String, request: GatewayRequest, context: GatewayContext) async throws -> GatewayResponse {
        switch page {
        case "crash":
            fatalError("/crash requested: the fixture crashes on purpose")
        case "segfault":
            // A real invalid access (raise() would be caught and resumed by the backtracer).
            let invalid = UnsafeMutablePointer<Int>(bitPattern: Int(self.pid & 0) + 16)
            invalid?.pointee = 42
            return self.text("unreachable\n")
        case "hang":
            // Tests wait for this line to know a worker holds the request.
            context.logger.notice("hanging on purpose in pid \(self.pid)")
            while true { try await Task.sleep(for: .seconds(3600)) }
        case "sleep":
            // Holds a request slot for ms milliseconds (at most a minute), then answers.
            let milliseconds = min(60_000, max(0, queryValue("ms", in: request.queryString).flatMap(Int.init) ?? 1000))
            context.logger.notice("sleeping \(milliseconds) ms on purpose in pid \(self.pid)")
            try await Task.sleep(for: .milliseconds(milliseconds))
            return self.text("slept \(milliseconds) ms\n")
        default:
            let megabytes = queryValue("mb", in: request.queryString).flatMap(Int.init) ?? 10
            Leak.keep(megabytes: megabytes)
            return self.text("leaked \(megabytes) MiB, \(Leak.total) MiB in all\n")
        }
    }
}

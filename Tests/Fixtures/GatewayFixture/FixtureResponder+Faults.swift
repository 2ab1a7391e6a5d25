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
        case "never-return":
            // Awaits what never comes and ignores cancellation: the slot stays held.
            context.logger.notice("never returning on purpose in pid \(self.pid)")
            await withUnsafeContinuation { (_: UnsafeContinuation<Void, Never>) in }
            return self.text("unreachable\n")
        case "spin":
            // Never suspends: no cancellation point, the thread it runs on stays busy.
            context.logger.notice("spinning on purpose in pid \(self.pid)")
            var now = timespec()
            while true { clock_gettime(CLOCK_MONOTONIC, &now) }
        case "allocate":
            // Allocates mb MiB at once (touched, so resident), holds them ms milliseconds, frees them.
            let megabytes = min(4096, max(0, queryValue("mb", in: request.queryString).flatMap(Int.init) ?? 64))
            let milliseconds = min(60_000, max(0, queryValue("ms", in: request.queryString).flatMap(Int.init) ?? 0))
            context.logger.notice("allocating \(megabytes) MiB on purpose in pid \(self.pid)")
            guard let block = malloc(megabytes << 20) else {
                return self.text("malloc failed\n", status: .internalServerError)
            }
            defer { free(block) }
            memset(block, 0x5a, megabytes << 20)
            // Read back one byte a page, and answer with their sum: the writes cannot be left out.
            var sum = 0
            for page in stride(from: 0, to: megabytes << 20, by: 4096) {
                sum &+= Int(block.load(fromByteOffset: page, as: UInt8.self))
            }
            try await Task.sleep(for: .milliseconds(milliseconds))
            return self.text("allocated \(megabytes) MiB for \(milliseconds) ms (\(sum))\n")
        default:
            let megabytes = queryValue("mb", in: request.queryString).flatMap(Int.init) ?? 10
            Leak.keep(megabytes: megabytes)
            return self.text("leaked \(megabytes) MiB, \(Leak.total) MiB in all\n")
        }
    }
}

import SwiftGateway

#if canImport(Glibc)
import Glibc
#endif

/// The program the integration tests and `make bench` run as a group's program: the pages they
/// need, fault pages included. Not an example to copy from (that is `Examples/ExampleSite`).
///
/// The page is chosen by the last segment of PATH_INFO, so `/admin/env` is the env page too.
@main
struct GatewayFixture {
    static func main() async throws {
        // A worker that takes this many seconds to start (startup-timeout's tests).
        if getenv("SWIFT_GATEWAY_ROLE").map({ String(cString: $0) }) == "worker",
            let delay = getenv("SWIFT_GATEWAY_FIXTURE_SLOW_START").flatMap({ UInt32(String(cString: $0)) })
        {
            sleep(delay)
        }
        try await Gateway.run(makeResponder: { FixtureResponder() })
    }
}

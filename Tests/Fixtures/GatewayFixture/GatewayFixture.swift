import SwiftGateway

/// The program the integration tests and `make bench` run as a group's program: the pages they
/// need, fault pages included. Not an example to copy from (that is `Examples/ExampleSite`).
///
/// The page is chosen by the last segment of PATH_INFO, so `/admin/env` is the env page too.
@main
struct GatewayFixture {
    static func main() async throws {
        try await Gateway.run(makeResponder: { FixtureResponder() })
    }
}

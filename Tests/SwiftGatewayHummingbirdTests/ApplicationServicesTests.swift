import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import XCTest

@testable import SwiftGatewayHummingbird

/// Records that it runs, then runs until the process ends.
private struct RecordingService: Service {
    let started: NIOLockedValueBox<Bool>

    func run() async throws {
        self.started.withLockedValue { $0 = true }
        try? await gracefulShutdown()
        // Never returns: ending would make the worker (here, the test process) stop.
        while true { try? await Task.sleep(for: .seconds(3600)) }
    }
}

final class ApplicationServicesTests: XCTestCase {
    func testTheApplicationsServicesRunBesideTheGateway() async throws {
        let started = NIOLockedValueBox(false)
        ApplicationServices.start([RecordingService(started: started)], logger: Logger(label: "test"))
        for _ in 0..<500 where !started.withLockedValue({ $0 }) {
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertTrue(started.withLockedValue { $0 })
    }
}

import XCTest

@testable import SwiftGateway

final class RestartBackoffTests: XCTestCase {
    func testDoublesWhileProcessesDieYoungUpToTheMaximum() {
        var backoff = RestartBackoff(initial: 0.1, maximum: 1, stableAfter: 10)
        let delays = (0..<6).map { _ in backoff.delay(afterLifetime: 0.5) }
        XCTAssertEqual(delays, [0.1, 0.2, 0.4, 0.8, 1, 1])
    }

    func testResetsAfterAStableLifetime() {
        var backoff = RestartBackoff(initial: 0.1, maximum: 30, stableAfter: 10)
        _ = backoff.delay(afterLifetime: 1)
        _ = backoff.delay(afterLifetime: 1)
        XCTAssertEqual(backoff.delay(afterLifetime: 10), 0)
        XCTAssertEqual(backoff.delay(afterLifetime: 1), 0.1)
    }
}

final class ExitReasonTests: XCTestCase {
    func testDecodesWaitStatuses() {
        XCTAssertEqual(ExitReason(waitStatus: 0), .exited(code: 0))
        XCTAssertEqual(ExitReason(waitStatus: 3 << 8), .exited(code: 3))
        XCTAssertEqual(ExitReason(waitStatus: 9), .signalled(signal: 9, coreDumped: false))
        XCTAssertEqual(ExitReason(waitStatus: 11 | 0x80), .signalled(signal: 11, coreDumped: true))
        XCTAssertEqual(ExitReason(waitStatus: 9).description, "killed by signal 9 (SIGKILL)")
    }
}

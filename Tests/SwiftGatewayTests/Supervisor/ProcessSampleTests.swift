import XCTest

#if canImport(Glibc)
import Glibc
#endif

@testable import SwiftGateway

final class ProcessSampleTests: XCTestCase {
    func testCPUTimeIsUserPlusSystemAfterTheCommandName() {
        // A command name with spaces and a parenthesis; utime 250, stime 50 ticks.
        let stat = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 12345 0 0"
        XCTAssertEqual(ProcessSample.cpuMicroseconds(stat: stat, ticksPerSecond: 100), 3_000_000)
        XCTAssertNil(ProcessSample.cpuMicroseconds(stat: "4242 (cut", ticksPerSecond: 100))
        XCTAssertNil(ProcessSample.cpuMicroseconds(stat: "1 (x) S 1 2", ticksPerSecond: 100))
    }

    func testReadsItsOwnProcess() {
        var spin = 0
        for value in 0..<2_000_000 { spin &+= value }
        XCTAssertNotEqual(spin, 1)
        let sample = ProcessSample.read(pid: getpid())
        XCTAssertGreaterThan(sample.residentBytes ?? 0, 1 << 20)
        XCTAssertNotNil(sample.cpuMicroseconds)
        XCTAssertEqual(ProcessSample.read(pid: 0x7fff_fff0), ProcessSample(), "a process that is gone: nothing")
    }
}

import XCTest

@testable import SwiftGateway

#if canImport(Glibc)
import Glibc
#endif

final class SupervisorHandoverTests: XCTestCase {
    private func pipe() -> (read: CInt, write: CInt) {
        var fds: [CInt] = [-1, -1]
        XCTAssertEqual(Glibc.pipe(&fds), 0)
        return (fds[0], fds[1])
    }

    func testTheSuccessorTellsThePredecessorOnceItsWorkersAccept() {
        let retire = self.pipe()
        let old = SupervisorHandover(environment: [SupervisorHandover.retireVariable: "\(retire.read)"])
        var new = SupervisorHandover(environment: [SupervisorHandover.predecessorVariable: "\(retire.write)"])
        defer { close(retire.read) }
        XCTAssertFalse(old.isRetireRequested)
        XCTAssertTrue(new.hasPredecessor)
        new.announceReady()
        XCTAssertFalse(new.hasPredecessor)
        XCTAssertTrue(old.isRetireRequested)
        XCTAssertEqual(fcntl(retire.read, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC, "no worker inherits it")
    }

    func testAPredecessorRetiresWhenItsPipeEnds() {
        let retire = self.pipe()
        let old = SupervisorHandover(environment: [SupervisorHandover.retireVariable: "\(retire.read)"])
        defer { close(retire.read) }
        close(retire.write)
        XCTAssertTrue(old.isRetireRequested)
    }

    func testWithoutTheVariablesThereIsNothingToDo() {
        var handover = SupervisorHandover(environment: [SupervisorHandover.retireVariable: "not a number"])
        XCTAssertNil(handover.retireDescriptor)
        XCTAssertFalse(handover.isRetireRequested)
        handover.announceReady()
    }
}

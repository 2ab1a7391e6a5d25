import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@testable import SwiftGateway

final class GroupScoreboardTests: XCTestCase {
    func testAWorkerSeesTheRoomItsSiblingsPublishThroughItsOwnMapping() throws {
        let (supervisorBoard, descriptor) = try GroupScoreboard.create(workers: 3)
        defer { close(descriptor) }
        // A worker maps a copy of the descriptor, as it finds it at fd 4, and closes it.
        let copy = dup(descriptor)
        let worker = try XCTUnwrap(GroupScoreboard.adopt(descriptor: copy, workers: 3))
        XCTAssertEqual(fcntl(copy, F_GETFD), -1, "the worker's descriptor is closed after mapping")

        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 0), 0, "a new board has no room anywhere")
        worker.setRoom(5, ofWorker: 0)
        supervisorBoard.setRoom(2, ofWorker: 1)
        supervisorBoard.setRoom(3, ofWorker: 2)
        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 0), 5)
        XCTAssertEqual(supervisorBoard.roomOfSiblings(of: 1, heldFor: 0), 8)
        // Room that appeared just now does not count for a patient reader.
        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 60_000_000_000), 0)
        // A worker gone (the supervisor clears its entry) has no room; out-of-range indexes are ignored.
        supervisorBoard.setRoom(0, ofWorker: 2)
        supervisorBoard.setRoom(9, ofWorker: 7)
        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 0), 2)
    }

    func testADescriptorTooSmallForTheGroupIsRefused() throws {
        let (_, descriptor) = try GroupScoreboard.create(workers: 1)
        defer { close(descriptor) }
        XCTAssertNil(GroupScoreboard.adopt(descriptor: dup(descriptor), workers: 4))
    }

    func testTheSupervisorReadsWhatAWorkerPublishesAboutItsRequests() throws {
        let entries = GroupScoreboard.entryCount(processes: 2)
        XCTAssertEqual(entries, 3, "one entry more than processes, for a recycled worker draining")
        let (supervisorBoard, descriptor) = try GroupScoreboard.create(workers: entries)
        defer { close(descriptor) }
        let worker = try XCTUnwrap(GroupScoreboard.adopt(descriptor: dup(descriptor), workers: entries))

        XCTAssertEqual(supervisorBoard.activity(ofWorker: 2), WorkerActivity(), "a new entry says nothing yet")
        XCTAssertFalse(try XCTUnwrap(supervisorBoard.activity(ofWorker: 2)).isAccepting)
        let before = monotonicNanoseconds()
        worker.markAccepting(ofWorker: 2)
        worker.requestStarted(inFlight: 1, ofWorker: 2)
        worker.requestStarted(inFlight: 2, ofWorker: 2)
        worker.requestFinished(inFlight: 1, ofWorker: 2)
        let activity = try XCTUnwrap(supervisorBoard.activity(ofWorker: 2))
        XCTAssertEqual(activity.requestsServed, 1)
        XCTAssertEqual(activity.inFlight, 1)
        XCTAssertTrue(activity.isAccepting)
        XCTAssertGreaterThanOrEqual(activity.lastRequestStart, before)
        XCTAssertEqual(supervisorBoard.activity(ofWorker: 1), WorkerActivity(), "entries are apart")
        XCTAssertNil(supervisorBoard.activity(ofWorker: 3))

        // The supervisor zeroes the entry of a worker that is gone, for the next one.
        worker.setRoom(4, ofWorker: 2)
        supervisorBoard.reset(worker: 2)
        XCTAssertEqual(supervisorBoard.activity(ofWorker: 2), WorkerActivity())
        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 0), 0)
    }
}

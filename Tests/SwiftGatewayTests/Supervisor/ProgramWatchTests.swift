import XCTest

@testable import SwiftGateway

#if canImport(Glibc)
import Glibc
#endif

final class ProgramWatchTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/program-watch-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
        }
        self.directory = try XCTUnwrap(made)
    }

    override func tearDown() {
        _ = try? self.run("rm -rf '\(self.directory)'")
        // XCTest keeps every test case object to the end (and never lets go): not its path.
        self.directory = ""
    }

    private func run(_ command: String) throws {
        XCTAssertEqual(system(command), 0, command)
    }

    private func write(_ path: String, _ text: String) throws {
        try self.run("printf '%s' '\(text)' > '\(path).tmp' && mv '\(path).tmp' '\(path)'")
    }

    func testANewBuildIsAnnouncedOnceItStopsChanging() throws {
        let program = self.directory + "/app"
        try self.write(program, "one")
        let running = FileIdentity(path: program)
        var watch = ProgramWatch(programPath: program, restartFile: nil, now: 0)
        XCTAssertEqual(watch.look(now: 0.1, running: running, failed: nil), [], "not due yet")
        XCTAssertEqual(watch.look(now: 0.5, running: running, failed: nil), [], "unchanged")

        try self.write(program, "two, half")
        XCTAssertEqual(watch.look(now: 1.0, running: running, failed: nil), [], "just seen")
        try self.write(program, "two, whole")
        XCTAssertEqual(watch.look(now: 1.5, running: running, failed: nil), [], "still changing")
        XCTAssertEqual(watch.look(now: 2.0, running: running, failed: nil), [])
        let built = try XCTUnwrap(FileIdentity(path: program))
        XCTAssertEqual(watch.look(now: 2.5, running: running, failed: nil), [.programChanged(built)])
        XCTAssertEqual(watch.look(now: 3.0, running: running, failed: nil), [], "announced once")
    }

    func testAFailedBuildIsNotTriedAgainUntilTheFileChanges() throws {
        let program = self.directory + "/app"
        try self.write(program, "one")
        let running = FileIdentity(path: program)
        try self.write(program, "broken")
        let broken = FileIdentity(path: program)
        var watch = ProgramWatch(programPath: program, restartFile: nil, now: 0)
        for tick in 1...6 {
            XCTAssertEqual(watch.look(now: Double(tick) * 0.5, running: running, failed: broken), [])
        }
        try self.write(program, "fixed")
        XCTAssertEqual(watch.look(now: 3.5, running: running, failed: broken), [])
        XCTAssertEqual(watch.look(now: 4.5, running: running, failed: broken).count, 1)
    }

    func testTouchingTheRestartFileIsAnnounced() throws {
        let restart = self.directory + "/restart.txt"
        var watch = ProgramWatch(programPath: nil, restartFile: restart, now: 0)
        XCTAssertTrue(watch.isActive)
        XCTAssertEqual(watch.look(now: 0.5, running: nil, failed: nil), [], "absent")
        try self.run("touch '\(restart)'")
        XCTAssertEqual(watch.look(now: 1.0, running: nil, failed: nil), [.restartFileTouched], "appeared")
        XCTAssertEqual(watch.look(now: 1.5, running: nil, failed: nil), [])
        try self.run("touch -d '2001-01-01' '\(restart)'")
        XCTAssertEqual(watch.look(now: 2.0, running: nil, failed: nil), [.restartFileTouched], "touched")
    }

    func testNothingIsWatchedWithReloadOffAndNoRestartFile() {
        var watch = ProgramWatch(programPath: nil, restartFile: nil, now: 0)
        XCTAssertFalse(watch.isActive)
        XCTAssertEqual(watch.look(now: 10, running: nil, failed: nil), [])
    }
}

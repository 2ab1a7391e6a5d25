import NIOCore

/// Runs tasks on a SwiftNIO event loop, so a request's application code and its channel
/// share one thread: no wake-up of another thread between reading a request, running the
/// application and writing its response.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

import Hummingbird
import SwiftGatewayHummingbird

/// A Hummingbird 2 application served by the gateway: `Gateway.run(…)` instead of
/// `application.runService()` is the only line that knows about it.
///
/// Started by hand it is a plain Hummingbird server on 127.0.0.1:8080 (`--port N` for another
/// port); under Apache, or with `--fastcgi`/`--http`, the gateway serves the same router.
@main
struct HummingbirdSite {
    static func main() async throws {
        let port = Self.port(in: CommandLine.arguments) ?? 8080
        try await Gateway.run(makeApplication: { Self.application(port: port) })
    }

    static func application(port: Int) -> some ApplicationProtocol {
        // A store that is a service of the application: under the gateway each worker runs it.
        let orders = MemoryPersistDriver()
        let router = Router(context: SiteContext.self)
        router.add(middleware: GreetingMiddleware())
        router.get("/hello") { _, _ in "Hello world!\n" }
        router.get("/greet/:name") { _, context in
            "\(context.greeting), \(try context.parameters.require("name"))!\n"
        }
        router.get("/client") { _, context in "\(context.clientAddress)\n" }
        router.post("/orders") { request, context in
            let order = try await request.decode(as: Order.self, context: context)
            return try order.confirmation()
        }
        router.get("/orders/:id") { _, context in
            let id = try context.parameters.require("id", as: Int.self)
            guard let order = try await orders.get(key: "order/\(id)", as: Order.self) else {
                throw HTTPError(.notFound, message: "no order \(id)\n")
            }
            return try order.confirmation()
        }
        // A slow page that honours cancellation: given up on at request-timeout, its task ends.
        router.get("/wait") { request, _ in
            let milliseconds = request.uri.queryParameters.get("ms", as: Int.self) ?? 1000
            try await Task.sleep(for: .milliseconds(milliseconds))
            return "waited \(milliseconds) ms\n"
        }
        router.post("/echo") { request, _ in
            Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: .init(asyncSequence: request.body))
        }
        router.post("/upload") { request, _ in try await UploadSummary(reading: request.body) }
        router.get("/download") { request, _ in
            let size = request.uri.queryParameters.get("bytes", as: Int.self) ?? 1 << 20
            return Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: PatternBody.make(size: size))
        }
        var application = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), services: [orders])
        // Run before the first request is served (in each worker under the gateway).
        application.beforeServerStarts {
            try await orders.create(key: "order/1", value: Order(item: "tea", quantity: 2), expires: nil)
        }
        return application
    }

    /// `--port N` on the command line (unknown arguments are left to the gateway).
    static func port(in arguments: [String]) -> Int? {
        guard let flag = arguments.firstIndex(of: "--port"), flag + 1 < arguments.count else { return nil }
        return Int(arguments[flag + 1])
    }
}

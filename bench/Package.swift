// swift-tools-version:6.1
import PackageDescription

// `make bench`'s programs, apart from SwiftGateway's package so that its users never see them.
// `make nio-floor` builds them into ../.build-bench.
let package = Package(
    name: "SwiftGatewayBench",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2")
    ],
    targets: [
        // gateway-nio-floor's group program (README.md)
        .executableTarget(
            name: "NIOFloorWorker",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)

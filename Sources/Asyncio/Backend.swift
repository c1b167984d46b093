// Which I/O backend a loop polls with.

import CAsyncio

extension EventLoop {
    /// The I/O backend of a loop (``EventLoop/init(virtualClock:debug:backend:)``).
    public enum Backend: String, Sendable, CaseIterable {
        /// io_uring when the kernel allows it, else epoll; the
        /// `ASYNCIO_BACKEND` environment variable (`uring` or `epoll`)
        /// overrides the choice.
        case automatic
        /// io_uring, or an error when the kernel or a sandbox refuses it.
        case ioUring = "io_uring"
        /// epoll: readiness-based, everywhere.
        case epoll

        var kind: ca_backend_kind {
            switch self {
            case .automatic: return CA_BACKEND_AUTO
            case .ioUring: return CA_BACKEND_URING
            case .epoll: return CA_BACKEND_EPOLL
            }
        }
    }

    /// The backend this loop polls with: `"io_uring"` or `"epoll"`.
    public nonisolated var backendName: String { String(cString: ca_loop_backend_name(core.loop)) }
}

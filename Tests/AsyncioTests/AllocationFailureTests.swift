// The test support's allocation failures on demand
// (ats_fail_core_allocations): the tests that provoke an out-of-memory
// path mean something only if the failures come where they are armed, and
// nowhere else.

import AsyncioTestSupport
import CAsyncio
import Testing

@Suite("Allocation failures on demand (test support)")
struct AllocationFailureTests {
    @Test("an armed thread's next core allocations fail, then allocate again")
    func armedThreadFailsThenAllocates() async throws {
        let outcomes = try await onThread { () -> [Bool] in
            ats_fail_core_allocations(2)
            return (0..<3).map { _ in
                let p = ca_malloc(32)
                defer { ca_free(p) }
                return p != nil
            }
        }
        #expect(outcomes == [false, false, true])
    }

    @Test("another thread allocates while one is armed")
    func otherThreadAllocates() async throws {
        let (otherAllocated, armedAllocated) = try await onThread { () -> (Bool, Bool) in
            ats_fail_core_allocations(1)
            let otherAllocated = Shared(false)
            onThreadJoined {
                let p = ca_malloc(32)
                defer { ca_free(p) }
                otherAllocated.value = p != nil
            }
            let p = ca_malloc(32)
            defer { ca_free(p) }
            return (otherAllocated.value, p != nil)
        }
        #expect(otherAllocated)
        #expect(!armedAllocated, "the armed failure was still there for the armed thread")
    }
}

// Where the shim's blocks (callback slots, Swift coroutines) go when the
// thread that frees them exits: back to the allocator, never into per-thread
// lists that nobody hands back any more.

@testable import Asyncio
import CAsyncio
import CAsyncioShim
import CAsyncioTestSupport
import Testing

@Suite("Shim allocation")
struct ShimAllocationTests {
    @Test("a callback slot freed on a thread after its freelists' exit hook ran returns to the allocator")
    func slotFreedAfterExitHookReturns() {
        // A later thread-exit destructor (a Swift thread-local's, say) may
        // release the last done callback holding a slot.
        #expect(ts_block_freed_after_thread_exit_is_returned(cas_slot_alloc, cas_slot_free) == 1)
    }

    @Test("a Swift coroutine freed on a thread after its freelists' exit hook ran returns to the allocator")
    func coroutineFreedAfterExitHookReturns() {
        let returned = ts_block_freed_after_thread_exit_is_returned(
            { UnsafeMutableRawPointer(cas_coro_new(staticCString("late"), staticCString(#fileID), 0)) },
            { ca_decref($0) })
        #expect(returned == 1)
    }
}

// README.md's C example compiles (it is built as part of the test support)
// and does what the README says it does.

import CAsyncioTestSupport
import Testing

@Suite("README example")
struct ReadmeExampleTests {

    @Test("the README's worker sums the queued jobs, sleeping 1 ms of virtual time per job")
    func readmeWorkerSumsJobs() {
        var elapsed: Int64 = 0
        #expect(readme_example(&elapsed) == 6)
        #expect(elapsed == 3_000_000)
    }
}

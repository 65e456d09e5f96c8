using Xunit;

// Test classes run one after another: several of them load the 2-core machine on purpose (10,000 calls, a killed
// router, PostgreSQL stopped for 30 s), and timing-sensitive tests beside them would measure that load, not the code.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

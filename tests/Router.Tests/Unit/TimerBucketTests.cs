using CallRouter.Router.Timers;
using Xunit;

namespace CallRouter.Tests.Unit;

/// <summary>
/// Which wait queue a broker timer goes to: the largest bucket within what remains plus a little slack, so a round delay
/// computed a hair short takes one hop instead of four, and a timer is never more than 20 ms late.
/// </summary>
public sealed class TimerBucketTests
{
    [Theory]
    [InlineData(9_999.97, 10_000)] // a 10 s retention, computed a moment after its due time was set: one hop, not 9000+900+90+9
    [InlineData(1_999.5, 2_000)]
    [InlineData(59_999.9, 60_000)]
    [InlineData(997, 1_000)] // back from a hop 3 ms short: 3 ms late rather than 900 + 90 + 7
    [InlineData(2_000, 2_000)]
    [InlineData(1_500, 1_000)] // then 500
    [InlineData(1_025, 1_000)] // 25 ms over, beyond 1 %: then 20 and 5
    [InlineData(45, 40)] // 1 % of 45 is under the 1 ms floor
    [InlineData(0.4, 1)]
    [InlineData(0, 1)]
    public void A_timer_waits_in_the_largest_bucket_within_what_remains_and_its_slack(double remainingMs, long bucketMs) =>
        Assert.Equal(bucketMs, BrokerCallTimers.Buckets[BrokerCallTimers.BucketFor(TimeSpan.FromMilliseconds(remainingMs))]);

    [Fact]
    public void No_bucket_makes_a_timer_more_than_20_ms_late()
    {
        for (var ms = 1.0; ms < 100_000; ms = ms * 1.013 + 0.37)
        {
            var bucket = BrokerCallTimers.Buckets[BrokerCallTimers.BucketFor(TimeSpan.FromMilliseconds(ms))];
            Assert.True(bucket <= ms + BrokerCallTimers.MaxLateness.TotalMilliseconds, $"{ms:F2} ms remaining went to the {bucket} ms bucket");
        }
    }
}

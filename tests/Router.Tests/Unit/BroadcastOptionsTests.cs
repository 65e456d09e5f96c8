using CallRouter.AsteriskAdapter.Calls;
using Xunit;

namespace CallRouter.Tests.Unit;

/// <summary><see cref="BroadcastOptions.Parse"/>: the dialplan's Stasis(call-router,ARGS...) read keyed or positional, defaults and exact errors.</summary>
public sealed class BroadcastOptionsTests
{
    private const int Default = 5000;

    private static BroadcastOptions Parsed(params string[] args)
    {
        var (options, error) = BroadcastOptions.Parse(args, Default);
        Assert.Null(error);
        return options!;
    }

    private static string Error(params string[] args)
    {
        var (options, error) = BroadcastOptions.Parse(args, Default);
        Assert.Null(options);
        return error!;
    }

    [Fact]
    public void No_arguments_take_every_default()
    {
        var options = Parsed();

        Assert.Equal(Default, options.TimeoutMs);
        Assert.Null(options.Filter);
        Assert.Empty(options.Args);
        Assert.False(options.NotifyClaimed);
    }

    [Fact]
    public void Keyed_arguments_are_read_in_any_order_and_keys_ignore_case_and_spaces()
    {
        var options = Parsed("notify=yes", " ARGS =vip:gold", "Filter=^sales", "timeout=1500");

        Assert.Equal(1500, options.TimeoutMs);
        Assert.Equal("^sales", options.Filter);
        Assert.Equal(new[] { "vip", "gold" }, options.Args);
        Assert.True(options.NotifyClaimed);
    }

    [Fact]
    public void Positional_arguments_follow_StasisBroadcast_s_order()
    {
        var options = Parsed("1500", "^sales", "vip:gold", "yes");

        Assert.Equal(new BroadcastOptions(1500, "^sales", options.Args, true), options);
        Assert.Equal(new[] { "vip", "gold" }, options.Args);
    }

    [Fact]
    public void Positional_and_keyed_arguments_mix()
    {
        var options = Parsed("2500", "notify=on");

        Assert.Equal(2500, options.TimeoutMs);
        Assert.Null(options.Filter);
        Assert.True(options.NotifyClaimed);
    }

    [Fact]
    public void Empty_values_take_the_defaults()
    {
        var options = Parsed("", "", "", "");
        Assert.Equal(Default, options.TimeoutMs);
        Assert.Null(options.Filter);
        Assert.Empty(options.Args);
        Assert.False(options.NotifyClaimed);

        Assert.Equal(Default, Parsed("timeout= ").TimeoutMs);
        Assert.False(Parsed("notify=").NotifyClaimed);
    }

    [Fact]
    public void A_timeout_of_zero_means_the_default_and_the_maximum_is_allowed()
    {
        Assert.Equal(Default, Parsed("timeout=0").TimeoutMs);
        Assert.Equal(BroadcastOptions.MaxTimeoutMs, Parsed("timeout=60000").TimeoutMs);
        Assert.Equal(1500, Parsed("timeout= 1500 ").TimeoutMs);
    }

    [Theory]
    [InlineData("yes", true)]
    [InlineData("TRUE", true)]
    [InlineData("1", true)]
    [InlineData(" on ", true)]
    [InlineData("no", false)]
    [InlineData("False", false)]
    [InlineData("0", false)]
    [InlineData("off", false)]
    public void Notify_takes_yes_and_no_words(string value, bool notify)
    {
        Assert.Equal(notify, Parsed($"notify={value}").NotifyClaimed);
    }

    [Fact]
    public void A_filter_keeps_its_text_as_written_including_an_equals_sign()
    {
        Assert.Equal(" ^sales$", Parsed("filter= ^sales$").Filter);
        // "^a=b" is no known key, so it is the positional filter.
        Assert.Equal("^a=b", Parsed("", "^a=b").Filter);
    }

    [Fact]
    public void Args_split_on_colons_keeping_empty_parts()
    {
        Assert.Equal(new[] { "vip", "", "gold" }, Parsed("args=vip::gold").Args);
        Assert.Equal(new[] { "one" }, Parsed("args=one").Args);
    }

    [Theory]
    [InlineData("timeout=60001", "timeout '60001' must be a whole number of milliseconds from 0 to 60000")]
    [InlineData("timeout=-5", "timeout '-5' must be a whole number of milliseconds from 0 to 60000")]
    [InlineData("timeout=1.5", "timeout '1.5' must be a whole number of milliseconds from 0 to 60000")]
    [InlineData("timeout=soon", "timeout 'soon' must be a whole number of milliseconds from 0 to 60000")]
    [InlineData("timeout=99999999999", "timeout '99999999999' must be a whole number of milliseconds from 0 to 60000")]
    [InlineData("notify=maybe", "notify 'maybe' must be yes or no")]
    public void Bad_values_are_refused_with_the_value_quoted(string arg, string error)
    {
        Assert.Equal(error, Error(arg));
    }

    [Fact]
    public void A_fifth_unkeyed_argument_is_refused_with_its_position()
    {
        Assert.Equal("argument 5 'extra' is not one of timeout=, filter=, args=, notify=", Error("1500", "^s", "a", "no", "extra"));
        Assert.Equal("argument 5 'color=red' is not one of timeout=, filter=, args=, notify=", Error("1", "2", "3", "no", "color=red"));
    }

    [Fact]
    public void Keyed_arguments_may_come_after_the_fourth_position()
    {
        var options = Parsed("1500", "^s", "a", "no", "notify=yes");

        Assert.True(options.NotifyClaimed);
    }

    [Fact]
    public void A_positional_timeout_is_checked_like_a_keyed_one()
    {
        Assert.Equal("timeout 'abc' must be a whole number of milliseconds from 0 to 60000", Error("abc"));
    }
}

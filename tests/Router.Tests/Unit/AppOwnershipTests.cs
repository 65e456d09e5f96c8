using CallRouter.Common;
using Xunit;

namespace CallRouter.Tests.Unit;

/// <summary><see cref="AppOwnership"/>: a user owns its own app and the apps its configured pattern matches whole.</summary>
public sealed class AppOwnershipTests
{
    private static AppOwnership With(params (string User, string Pattern)[] owners) =>
        new(owners.Select(o => KeyValuePair.Create(o.User, o.Pattern)));

    [Fact]
    public void A_user_owns_the_app_of_its_own_name_and_no_other_by_default()
    {
        var ownership = new AppOwnership();

        Assert.True(ownership.Owns("sales", "sales"));
        Assert.False(ownership.Owns("sales", "support"));
        Assert.False(ownership.Owns("sales", "Sales"));
        Assert.False(ownership.Owns("sales", "sales2"));
    }

    [Fact]
    public void A_pattern_must_match_the_whole_app_name()
    {
        var ownership = With(("team", "sales-.*"), ("ops", "a|b"));

        Assert.True(ownership.Owns("team", "sales-east"));
        Assert.True(ownership.Owns("team", "team"));
        Assert.False(ownership.Owns("team", "presales-east"));
        Assert.True(ownership.Owns("ops", "a"));
        Assert.True(ownership.Owns("ops", "b"));
        // Anchored around the whole alternation, not just its first and last branch.
        Assert.False(ownership.Owns("ops", "ab"));
        Assert.False(ownership.Owns("ops", "xb"));
        Assert.False(ownership.Owns("other", "sales-east"));
    }

    [Fact]
    public void A_catch_all_pattern_owns_every_app()
    {
        var ownership = With(("guest", ".*"));

        Assert.True(ownership.Owns("guest", "sales"));
        Assert.True(ownership.Owns("guest", "anything_at-all"));
        Assert.False(ownership.Owns("sales", "guest-app"));
    }

    [Fact]
    public void Refusal_is_null_for_an_owner_and_says_why_otherwise()
    {
        var ownership = With(("team", "sales-.*"));

        Assert.Null(ownership.Refusal("team", "sales-east", "claim"));
        Assert.Null(ownership.Refusal("sales", "sales", "claim"));
        Assert.Equal("RabbitMQ user 'team' does not own app 'support' (a user owns the app of its own name, and those matched by Router__AppOwners__team)",
            ownership.Refusal("team", "support", "claim"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void Refusal_without_a_user_id_asks_for_it(string? userId)
    {
        Assert.Equal("the heartbeat has no user_id: set the AMQP user_id property to your RabbitMQ user name (the broker checks it)",
            new AppOwnership().Refusal(userId, "sales", "heartbeat"));
    }

    [Fact]
    public void A_pattern_that_is_not_a_regular_expression_fails_at_start_naming_the_setting()
    {
        var error = Assert.Throws<ArgumentException>(() => With(("team", "sales-(")));

        Assert.StartsWith("Router:AppOwners:team: 'sales-(' is not a usable regular expression: ", error.Message);
    }

    [Fact]
    public void A_pattern_linear_time_matching_cannot_run_fails_at_start()
    {
        // Backreferences need backtracking, which the ownership patterns never use.
        var error = Assert.Throws<ArgumentException>(() => With(("team", @"(a)\1")));

        Assert.StartsWith("Router:AppOwners:team: '(a)\\1' is not a usable regular expression: ", error.Message);
        Assert.IsType<NotSupportedException>(error.InnerException);
    }
}

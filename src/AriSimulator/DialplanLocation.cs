namespace CallRouter.AriSimulator;

/// <summary>A place in the dialplan: context, extension, priority.</summary>
public sealed record DialplanLocation(string Context, string Extension, int Priority);

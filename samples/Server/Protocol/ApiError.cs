using System.Text.Json.Nodes;

namespace VidKV.AI.Server;

/// <summary>
/// An error answered in OpenAI's shape, <c>{"error":{"message","type","param","code"}}</c>: the HTTP status, OpenAI's
/// error type, the request field it is about (as the client spelled it) and OpenAI's code where OpenAI has one.
/// </summary>
public sealed class ApiError : Exception
{
    /// <summary>Creates an error.</summary>
    /// <param name="status">The HTTP status code.</param>
    /// <param name="message">What went wrong and what is allowed; never file bytes, internal paths or pointers.</param>
    /// <param name="type">OpenAI's error type, e.g. <c>invalid_request_error</c>.</param>
    /// <param name="param">The request field, as the client spelled it; <see langword="null"/> when none.</param>
    /// <param name="code">OpenAI's error code, e.g. <c>model_not_found</c>; <see langword="null"/> when none.</param>
    public ApiError(int status, string message, string type, string? param = null, string? code = null)
        : base(message)
    {
        Status = status;
        Type = type;
        Param = param;
        Code = code;
    }

    /// <summary>The HTTP status code.</summary>
    public int Status { get; }

    /// <summary>OpenAI's error type.</summary>
    public string Type { get; }

    /// <summary>The request field the error is about, as the client spelled it.</summary>
    public string? Param { get; }

    /// <summary>OpenAI's error code.</summary>
    public string? Code { get; }

    /// <summary>A 400 <c>invalid_request_error</c>.</summary>
    public static ApiError Invalid(string message, string? param = null, string? code = null) =>
        new(StatusCodes.Status400BadRequest, message, "invalid_request_error", param, code);

    /// <summary>A 400 for a parameter this server does not implement (OpenAI's <c>unsupported_parameter</c>).</summary>
    public static ApiError UnsupportedParameter(string param, string why) =>
        Invalid($"Unsupported parameter: '{param}' {why}", param, "unsupported_parameter");

    /// <summary>A 400 for a value this server does not implement (OpenAI's <c>unsupported_value</c>).</summary>
    public static ApiError UnsupportedValue(string param, string why) =>
        Invalid($"Unsupported value: '{param}' {why}", param, "unsupported_value");

    /// <summary>The JSON body: <c>{"error":{"message","type","param","code"}}</c>.</summary>
    public JsonObject ToJson() => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = Message,
            ["type"] = Type,
            ["param"] = Param,
            ["code"] = Code,
        },
    };
}

using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;

namespace VidKV.AI.Server;

/// <summary>
/// The checks every request passes before an endpoint sees it, each refusal in OpenAI's error shape: a known
/// <c>Host</c>, the API key when one is set, a JSON content type and a body within the size limit; and a JSON body
/// for every error status an endpoint did not write (404, 405, 413 from Kestrel).
/// </summary>
public static partial class ServerGuards
{
    /// <summary>Adds the checks to the pipeline.</summary>
    /// <param name="app">The application.</param>
    /// <param name="options">The <c>Server</c> settings.</param>
    public static void UseServerGuards(this WebApplication app, ServerOptions options)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("VidKV.AI.Server");
        byte[]? key = string.IsNullOrEmpty(options.ApiKey) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.ApiKey));

        app.Use(async (context, next) =>
        {
            try
            {
                if (Check(context, options, key) is { } refusal)
                {
                    Log.Refused(logger, context.Request.Method, context.Request.Path, refusal.Status, refusal.Code, refusal.Message);
                    await OpenAIProtocol.WriteErrorAsync(context, refusal).ConfigureAwait(false);
                    return;
                }

                await next(context).ConfigureAwait(false);
            }
            catch (BadHttpRequestException e) when (!context.Response.HasStarted)
            {
                // Kestrel's own refusals (a body over the limit, a malformed body): a client error, not a crash.
                var error = e.StatusCode == StatusCodes.Status413PayloadTooLarge
                    ? TooLarge(options)
                    : new ApiError(e.StatusCode, "The request could not be read: " + e.Message, "invalid_request_error");
                Log.Refused(logger, context.Request.Method, context.Request.Path, error.Status, error.Code, error.Message);
                await OpenAIProtocol.WriteErrorAsync(context, error).ConfigureAwait(false);
            }
        });

        app.UseStatusCodePages(async status =>
        {
            var context = status.HttpContext;
            if (context.Response.HasStarted || context.Response.ContentLength > 0 || context.Response.ContentType is not null)
            {
                return;
            }

            string route = $"{context.Request.Method} {context.Request.Path}";
            var error = context.Response.StatusCode switch
            {
                StatusCodes.Status404NotFound => new ApiError(404, $"Invalid URL ({route}).", "invalid_request_error", null, "unknown_url"),
                StatusCodes.Status405MethodNotAllowed => new ApiError(405, $"Invalid method for URL ({route}).", "invalid_request_error", null, "method_not_allowed"),
                StatusCodes.Status413PayloadTooLarge => TooLarge(options),
                var code when code >= 500 => new ApiError(code, "The server had an error while processing your request.", "server_error"),
                var code => new ApiError(code, $"The request failed with status {code}.", "invalid_request_error"),
            };
            await OpenAIProtocol.WriteErrorAsync(context, error).ConfigureAwait(false);
        });
    }

    /// <summary>The error for a body over <see cref="ServerOptions.MaxRequestBodyBytes"/>.</summary>
    public static ApiError TooLarge(ServerOptions options) => new(
        StatusCodes.Status413PayloadTooLarge,
        $"The request body is larger than this server's limit of {options.MaxRequestBodyBytes:N0} bytes (Server:MaxRequestBodyBytes); base64 media count a third more than their files.",
        "invalid_request_error",
        null,
        "request_too_large");

    /// <summary>True when <paramref name="host"/> matches an entry of <paramref name="allowed"/>.</summary>
    public static bool HostAllowed(string host, IReadOnlyList<string> allowed)
    {
        if (string.IsNullOrEmpty(host))
        {
            return false;
        }

        foreach (string entry in allowed)
        {
            if (entry == "*" || string.Equals(entry, host, StringComparison.OrdinalIgnoreCase)
                || (entry.StartsWith("*.", StringComparison.Ordinal) && host.EndsWith(entry[1..], StringComparison.OrdinalIgnoreCase)))
            {
                return true;
            }
        }

        return false;
    }

    private static ApiError? Check(HttpContext context, ServerOptions options, byte[]? key)
    {
        var request = context.Request;
        if (!HostAllowed(request.Host.Host, options.EffectiveAllowedHosts))
        {
            return ApiError.Invalid(
                "The Host header names a host this server does not answer (Server:AllowedHosts; loopback names only by default).",
                code: "invalid_host");
        }

        if (key is not null && request.Path.StartsWithSegments("/v1") && !KeyMatches(request.Headers.Authorization.ToString(), key))
        {
            return new ApiError(
                StatusCodes.Status401Unauthorized,
                request.Headers.Authorization.Count == 0
                    ? "You didn't provide an API key. Send it in the Authorization header as 'Bearer <key>' (the server's Server:ApiKey)."
                    : "Incorrect API key provided.",
                "invalid_request_error",
                null,
                "invalid_api_key");
        }

        if (HttpMethods.IsPost(request.Method))
        {
            if (!IsJson(request.ContentType))
            {
                return new ApiError(
                    StatusCodes.Status415UnsupportedMediaType,
                    $"The request's Content-Type is '{request.ContentType ?? "(none)"}'; this server reads 'application/json' bodies only.",
                    "invalid_request_error",
                    null,
                    "unsupported_media_type");
            }

            if (request.ContentLength > options.MaxRequestBodyBytes)
            {
                return TooLarge(options);
            }
        }

        return null;
    }

    private static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) && parsed.MediaType is { } type
        && (type.Equals("application/json", StringComparison.OrdinalIgnoreCase) || type.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    /// <summary>Compares a header with the expected value in constant time.</summary>
    public static bool SameKey(string given, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given ?? string.Empty)), SHA256.HashData(Encoding.UTF8.GetBytes(expected ?? string.Empty)));

    private static bool KeyMatches(string header, byte[] key)
    {
        const string Scheme = "Bearer ";
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        byte[] given = SHA256.HashData(Encoding.UTF8.GetBytes(header[Scheme.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(given, key);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "{Method} {Path}: {Status} {Code}: {Message}")]
        public static partial void Refused(ILogger logger, string method, string path, int status, string? code, string message);
    }
}

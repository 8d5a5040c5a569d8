defmodule TimelessMetrics.HTTP.PureTest do
  use ExUnit.Case, async: true

  alias TimelessMetrics.HTTP.{Auth, Errors, JSON, Params, Request, Selector, Window}

  doctest TimelessMetrics.HTTP.Selector
  doctest TimelessMetrics.HTTP.JSON
  doctest TimelessMetrics.HTTP.Params
  doctest TimelessMetrics.HTTP.Request
  doctest TimelessMetrics.HTTP.Errors
  doctest TimelessMetrics.HTTP.Auth
  doctest TimelessMetrics.HTTP.Window
  doctest TimelessMetrics.HTTP.Router
  doctest TimelessMetrics.HTTP

  describe "Selector.parse/1" do
    test "metric name alone, and names with colons" do
      assert Selector.parse("up") == {:ok, [{"__name__", :eq, "up"}]}
      assert Selector.parse("job:rate5m ") == {:ok, [{"__name__", :eq, "job:rate5m"}]}
    end

    test "all four ops, whitespace and a trailing comma" do
      assert Selector.parse(~s( {a = "1" , b!="2", c=~"x.*", d!~'y',} )) ==
               {:ok, [{"a", :eq, "1"}, {"b", :ne, "2"}, {"c", :re, "x.*"}, {"d", :nre, "y"}]}
    end

    test "Go string escapes and raw strings" do
      assert Selector.parse(~S|{a="q\"uote", b='it\'s', c="\x41\101\u00e9\U0001F600", d=`raw\n`}|) ==
               {:ok, [{"a", :eq, "q\"uote"}, {"b", :eq, "it's"}, {"c", :eq, "AAé😀"}, {"d", :eq, "raw\\n"}]}
    end

    test "errors name the column" do
      assert {:error, "1:5: parse error: unexpected \"}\", expected end of selector"} = Selector.parse("up{}}")
      assert {:error, "1:6: parse error: unexpected" <> _} = Selector.parse("up{a=b}")
      assert {:error, "1:" <> msg} = Selector.parse(~s(up{a="x))
      assert msg =~ "unterminated"
      assert {:error, msg} = Selector.parse(~S|{a="\q"}|)
      assert msg =~ "invalid escape"
      assert {:error, msg} = Selector.parse(~s(up{a=~"("}))
      assert msg =~ "invalid regular expression"
      assert Selector.parse("") |> elem(0) == :error
      assert Selector.parse("1up") |> elem(0) == :error
    end

    test "at least one matcher that does not match the empty string" do
      assert {:error, "vector selector must contain at least one non-empty matcher"} = Selector.parse(~s({a=""}))
      assert {:error, _} = Selector.parse(~s({a=~".*"}))
      assert {:error, _} = Selector.parse(~s({a!="x"}))
      assert {:ok, _} = Selector.parse(~s({a=~".+"}))
      assert {:ok, _} = Selector.parse(~s({a!=""}))
    end

    test "the metric name cannot be set twice" do
      assert {:error, "metric name must not be set twice" <> _} = Selector.parse(~s(up{__name__="down"}))
      assert {:ok, [{"__name__", :eq, "up"}]} = Selector.parse(~s({__name__="up"}))
    end
  end

  describe "JSON.format_value/1 writes Go's 'f' format" do
    test "shortest digits without an exponent" do
      assert JSON.format_value(0.1) == "0.1"
      assert JSON.format_value(1.0e21) == "1000000000000000000000"
      assert JSON.format_value(1.5e-7) == "0.00000015"
      assert JSON.format_value(-2.5) == "-2.5"
      assert JSON.format_value(123_456.789) == "123456.789"
      assert JSON.format_value(0.0) == "0"
      assert JSON.format_value(:nan) == "NaN"
      assert JSON.format_value(:infinity) == "+Inf"
    end
  end

  describe "Params" do
    test "times: seconds, fractions, RFC 3339, errors" do
      req = Request.new("GET", "/?a=1700000000&b=2023-11-14T22:13:20.5Z&c=yesterday")
      assert Params.time(req, ["a"], nil) == {:ok, 1_700_000_000_000}
      assert Params.time(req, ["b"], nil) == {:ok, 1_700_000_000_500}
      assert Params.time(req, ["missing", "a"], nil) == {:ok, 1_700_000_000_000}
      assert Params.time(req, ["missing"], :dflt) == {:ok, :dflt}
      assert {:error, {:bad_input, ~s(invalid parameter "c": cannot parse "yesterday" to a valid timestamp)}} =
               Params.time(req, ["c"], nil)
    end

    test "durations" do
      for {text, ms} <- [{"15", 15_000}, {"0.5", 500}, {"100ms", 100}, {"5m", 300_000}, {"1h30m", 5_400_000}, {"1d", 86_400_000}] do
        assert Params.duration(Request.new("GET", "/?step=#{text}"), "step", nil) == {:ok, ms}, text
      end

      assert {:error, {:bad_input, _}} = Params.duration(Request.new("GET", "/?step=5x"), "step", nil)
      assert {:error, {:bad_input, _}} = Params.duration(Request.new("GET", "/?step=0"), "step", nil)
    end

    test "limits" do
      assert Params.limit(Request.new("GET", "/?limit=3")) == {:ok, 3}
      assert Params.limit(Request.new("GET", "/?limit=0")) == {:ok, nil}
      assert {:error, {:bad_input, _}} = Params.limit(Request.new("GET", "/?limit=-1"))
    end
  end

  describe "Request" do
    test "query strings: repeated keys, + and percent escapes" do
      req = Request.new("GET", "/x?match%5B%5D=%7Bjob%3D%22a+b%22%7D&match[]=up&empty")
      assert req.query == %{"match[]" => [~s({job="a b"}), "up"], "empty" => [""]}
    end

    test "form bodies merge into the query, body values first" do
      req =
        Request.new("POST", "/x?limit=1&a=url",
          headers: %{"Content-Type" => "application/x-www-form-urlencoded; charset=utf-8"},
          body: "a=body&match[]=up"
        )

      merged = Request.merge_form(req)
      assert merged.query == %{"limit" => ["1"], "a" => ["body", "url"], "match[]" => ["up"]}
      assert Request.merge_form(%{req | headers: %{"content-type" => "text/plain"}}).query == req.query
    end
  end

  describe "Auth" do
    test "open without tokens; 401 without or with a wrong token" do
      assert Auth.check(%{headers: %{}}, :admin, %{tokens: [], read_only_tokens: []}) == :ok
      config = %{tokens: ["t1", "t2"], read_only_tokens: []}
      assert {:error, {:unauthorized, _}} = Auth.check(%{headers: %{}}, :read, config)
      assert {:error, {:unauthorized, _}} = Auth.check(%{headers: %{"authorization" => "Bearer t3"}}, :read, config)
      assert {:error, {:unauthorized, _}} = Auth.check(%{headers: %{"authorization" => "Basic t1"}}, :read, config)
      assert :ok = Auth.check(%{headers: %{"authorization" => "bearer t2"}}, :write, config)
      assert :ok = Auth.check(%{headers: %{}}, :public, config)
    end
  end

  describe "Errors" do
    test "statuses, types and extra headers" do
      for {kind, status, type} <- [
            {:bad_input, 400, "bad_data"},
            {:too_large, 413, "bad_data"},
            {:limit_exceeded, 422, "execution"},
            {:overloaded, 429, "too_many_requests"},
            {:unavailable, 503, "unavailable"},
            {:not_found, 404, "not_found"},
            {:corrupt, 500, "internal"}
          ] do
        {^status, headers, body} = Errors.response({kind, "m"})
        assert :jiffy.decode(body, [:return_maps]) == %{"status" => "error", "errorType" => type, "error" => "m"}
        assert {"content-type", "application/json"} in headers
      end

      assert {429, headers, _} = Errors.response({:overloaded, "busy"})
      assert {"retry-after", "1"} in headers
      assert {401, headers, _} = Errors.response({:unauthorized, "no"})
      assert {"www-authenticate", "Bearer"} in headers
    end
  end

  describe "Window.aggregate/3" do
    test "each aggregate over a window, stale points skipped" do
      points = [{0, 2.0}, {1000, :stale}, {2000, 4.0}, {3000, 3.0}]
      assert Window.aggregate(points, :avg, 3000) == 3.0
      assert Window.aggregate(points, :min, 3000) == 2.0
      assert Window.aggregate(points, :max, 3000) == 4.0
      assert Window.aggregate(points, :count, 3000) == 3.0
      assert Window.aggregate(points, :first, 3000) == 2.0
      assert Window.aggregate(points, :last, 3000) == 3.0
      assert Window.aggregate(points, :increase, 3000) == 5.0
      assert Window.aggregate([{0, 1.0}], :rate, 1000) == nil
      assert Window.aggregate([{0, :nan}, {1, 1.0}], :max, 1) == 1.0
      assert Window.aggregate([{0, :nan}, {1, 1.0}], :sum, 1) == :nan
    end
  end

  describe "HTTP.validate/1" do
    test "errors name the option" do
      assert {:error, {:invalid_option, :store, "required"}} = TimelessMetrics.HTTP.validate(port: 1)
      assert {:error, {:invalid_option, :ip, _}} = TimelessMetrics.HTTP.validate(store: :s, ip: "0.0.0.0")
      assert {:error, {:invalid_option, :max_body_bytes, _}} = TimelessMetrics.HTTP.validate(store: :s, max_body_bytes: 0)
      assert {:error, {:invalid_option, :tokens, _}} = TimelessMetrics.HTTP.validate(store: :s, tokens: "abc")
      assert {:error, {:invalid_option, :read_only_tokens, _}} = TimelessMetrics.HTTP.validate(store: :s, read_only_tokens: [""])
      assert {:error, {:invalid_option, :bogus, _}} = TimelessMetrics.HTTP.validate(store: :s, bogus: 1)
      assert {:ok, %{ip: {0, 0, 0, 0}, name: :web}} = TimelessMetrics.HTTP.validate(store: :s, ip: {0, 0, 0, 0}, name: :web)
    end
  end
end

defmodule TimelessMetrics.HTTP.SeriesJSONTest do
  @moduledoc """
  `/api/v1/series` is written by the engine (`TimelessMetrics.series_json/3`); these
  tests hold it to the answer of the Elixir path it replaced: `list_series/4` per
  `match[]`, `Query.union/2`, `Params.apply_limit/2`, jiffy.
  """
  use ExUnit.Case, async: true

  import TimelessMetrics.HTTPHelpers

  alias TimelessMetrics.HTTP.{Errors, JSON, Params, Query, Selector}
  alias TimelessMetrics.Native

  @t0 1_700_000_000

  # values worth escaping: quotes, backslashes, control characters, non-ASCII,
  # characters Go would escape but jiffy does not
  @odd ["a\"b", "back\\slash", "new\nline", "tab\there", "\u0001ctl\u001f", "\b\f\r", "é", "日本語", "😀",
        "<tag>&amp;", "line\u2028sep\u2029", "del\x7f", "/path/x", "é\u0000nul", " lead", "trail "]

  setup do
    store = TimelessMetrics.TestStore.start!()

    many = Map.new(1..24, fn i -> {"label_#{i}", "v#{rem(i, 5)}"} end)

    entries =
      for {v, i} <- Enum.with_index(@odd) do
        {"odd_values", %{"v" => v, "i" => "#{i}", "job" => "api"}, i, @t0}
      end ++
        for i <- 1..12 do
          {"http_requests_total",
           %{"job" => Enum.at(["api", "db", "web"], rem(i, 3)), "code" => "#{200 + rem(i, 4)}", "Zone" => "z#{rem(i, 2)}",
             "_hidden" => "h", "a1" => "x#{i}", "instance" => "host-#{i}:9100"}, i, @t0 + i}
        end ++
        for i <- 1..6 do
          {"node_cpu_seconds_total", Map.merge(many, %{"cpu" => "#{i}", "mode" => "idle", "job" => "node"}), i, @t0}
        end ++
        [
          {"up", %{"job" => "api", "instance" => "a:1"}, 1, @t0},
          {"up", %{"job" => "db", "instance" => "b:1"}, 1, @t0 + 60},
          {"up", %{}, 1, @t0},
          {"old_metric", %{"job" => "api", "instance" => "a:1"}, 7, @t0 - 86_400},
          {"weird:metric\"name", %{"job" => "api"}, 1, @t0},
          {"UPPER", %{"job" => "db"}, 1, @t0}
        ]

    :ok = TimelessMetrics.write_batch(store, entries)
    %{store: store, config: config(store)}
  end

  # The body the endpoint wrote before the engine did.
  defp old_body(store, selectors, range, limit) do
    {:ok, series} = Query.union(selectors, &TimelessMetrics.list_series(store, nil, &1, range))
    {kept, warnings} = Params.apply_limit(series, limit)
    kept |> Enum.map(&Map.put(&1.labels, "__name__", &1.metric)) |> JSON.success(warnings) |> IO.iodata_to_binary()
  end

  defp target(matches, params) do
    query = Enum.map(matches, &{"match[]", &1}) ++ for({k, v} <- params, v != nil, do: {k, to_string(v)})
    "/api/v1/series?" <> URI.encode_query(query)
  end

  defp check(config, store, matches, params) do
    {200, headers, body} = route(config, "GET", target(matches, params))
    assert {"content-type", "application/json"} in headers

    selectors = Enum.map(matches, fn m -> {:ok, s} = Selector.parse(m); s end)
    ms = fn nil -> nil; s -> s * 1000 end
    range = [from: ms.(params[:start]), to: ms.(params[:end]), unit: :millisecond]
    old = old_body(store, selectors, range, params[:limit])

    assert json(body) == json(old), "#{inspect(matches)} #{inspect(params)}"
    body
  end

  @requests [
    {[~s(up)], []},
    {[~s({job="api"})], []},
    {[~s({job="api"}), ~s(up), ~s({__name__=~"node_.*"})], []},
    {[~s(up), ~s(up{job="api"}), ~s({job=~"api|db"})], []},
    {[~s(odd_values), ~s({v=~".*\\\\n.*|.*é.*"})], []},
    {[~s({v!~".*a.*", i=~".+"})], []},
    {[~s(http_requests_total{code!="200",Zone="z1"})], [limit: 3]},
    {[~s({job=~".+"})], [limit: 1]},
    {[~s({job=~".+"})], [limit: 1000]},
    {[~s({job=~".+"})], [start: @t0 - 100_000, end: @t0 - 1]},
    {[~s({job=~".+"})], [start: @t0 + 5]},
    {[~s({job=~".+"}), ~s(up)], [end: @t0, limit: 7]},
    {[~s({job="none"})], []},
    {[~s({__name__=~".+"})], [limit: 2]}
  ]

  test "the same series, order, limit and warning as the Elixir path", %{config: c, store: store} do
    for {matches, params} <- @requests do
      check(c, store, matches, params)
    end
  end

  test "the same bytes, escaping included", %{config: c, store: store} do
    # every series has at most 31 labels (the default max_labels is 30): the old path's
    # maps were flat, their keys in order
    for {matches, params} <- @requests do
      body = check(c, store, matches, params)
      selectors = Enum.map(matches, fn m -> {:ok, s} = Selector.parse(m); s end)
      ms = fn nil -> nil; s -> s * 1000 end
      range = [from: ms.(params[:start]), to: ms.(params[:end]), unit: :millisecond]
      assert body == old_body(store, selectors, range, params[:limit]), "#{inspect(matches)} #{inspect(params)}"
    end

    {200, _, body} = route(c, "GET", target([~s(odd_values{i="3"})], []))
    assert body == ~s({"status":"success","data":[{"v":"tab\\there","job":"api","i":"3","__name__":"odd_values"}]})
  end

  test "a series of more than 32 labels decodes the same" do
    # (possible only with max_labels above its default of 30; the old path's map was a
    # hash map then, its keys in hash order)
    store = TimelessMetrics.TestStore.start!(max_labels: 40)
    c = config(store)
    labels = Map.new(1..40, fn i -> {"l#{i}", "v\"#{i}"} end)
    :ok = TimelessMetrics.write_batch(store, [{"wide", labels, 1, @t0}, {"narrow", %{"l1" => "v1"}, 1, @t0}])
    body = check(c, store, [~s(wide), ~s({l1=~"v.+"})], [])
    assert %{"data" => [%{"__name__" => "narrow"}, %{"__name__" => "wide", "l40" => "v\"40"} = one]} = json(body)
    assert map_size(one) == 41
  end

  test "a large selection runs on a dirty scheduler and answers the same", %{config: c, store: store} do
    entries = for i <- 1..600, do: {"big", %{"i" => "#{i}", "job" => "bulk"}, 1, @t0}
    :ok = TimelessMetrics.write_batch(store, entries)
    {:ok, %{ref: ref}} = TimelessMetrics.Engine.handle(store)

    big = [[{"__name__", :eq, "big"}]]
    assert Native.series_json(ref, big, nil, nil, nil) == :dirty
    assert is_binary(Native.series_json(ref, [[{"__name__", :eq, "up"}]], nil, nil, nil))
    # a regex scanning many label values (616 of `i`, probed for up to 3 candidates:
    # ~2,500 steps of work) is not answered inline either
    assert Native.series_json(ref, [[{"__name__", :eq, "up"}, {"i", :re, "1.*"}]], nil, nil, nil) == :dirty

    for params <- [[], [limit: 10], [start: @t0 - 10, end: @t0 + 10]] do
      body = check(c, store, [~s(big), ~s({job="bulk", i=~"1.."})], params)
      assert length(json(body)["data"]) == if(params[:limit], do: 10, else: 600)
    end
  end

  test "errors answer as before", %{config: c, store: store} do
    assert {400, %{"errorType" => "bad_data", "error" => "no match[] parameter provided"}} =
             route_json(c, "GET", "/api/v1/series")

    assert {400, %{"error" => ~s(invalid parameter "start": cannot parse "x" to a valid timestamp)}} =
             route_json(c, "GET", target([~s(up)], start: "x"))

    assert {400, %{"error" => ~s(invalid parameter "end": cannot parse "y" to a valid timestamp)}} =
             route_json(c, "GET", target([~s(up)], end: "y"))

    assert {400, %{"error" => ~s(invalid parameter "limit": cannot parse "-1" to a non-negative integer)}} =
             route_json(c, "GET", target([~s(up)], limit: -1))

    assert {400, %{"error" => "invalid parameter \"match[]\": 1:4: parse error" <> _}} =
             route_json(c, "GET", target([~s(up), ~s(up{)], []))

    # a regex PCRE takes and the engine refuses (look-ahead): the engine's message, as before
    matches = [~s(up), ~s|{job=~"(?=a)pi"}|]
    {:ok, sel} = Selector.parse(~s|{job=~"(?=a)pi"}|)
    {:error, reason} = TimelessMetrics.list_series(store, nil, sel)
    {status, _, old} = Errors.response(reason)
    assert {^status, _, new} = route(c, "GET", target(matches, []))
    assert {status, new} == {400, IO.iodata_to_binary(old)}
  end

  test "series_json/3 takes filters in every form list_series/4 does", %{store: store} do
    assert {:ok, body} = TimelessMetrics.series_json(store, [%{"__name__" => "up", "job" => "db"}, [__name__: "UPPER"]], limit: 1)
    assert body == ~s({"status":"success","data":[{"job":"db","__name__":"UPPER"}],"warnings":["results truncated due to limit"]})
    assert {:ok, ~s({"status":"success","data":[]})} = TimelessMetrics.series_json(store, [])
    assert {:error, {:bad_input, _}} = TimelessMetrics.series_json(store, [[{"job", :like, "x"}]])
    assert {:error, {:unavailable, _}} = TimelessMetrics.series_json(:no_such_store, [[job: "db"]])
  end
end

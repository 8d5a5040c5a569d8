defmodule TimelessMetrics.PromQL.Conformance do
  @moduledoc """
  Runs Prometheus's PromQL test scripts (v2.53 `promqltest` format, parsed by
  `TimelessMetrics.PromQL.Conformance.Script`) against `TimelessMetrics.PromQL`, the
  way upstream's runner (`promql/promqltest/test.go`) does:

    * every file starts on a fresh **memory** store; `clear` replaces it by another
      fresh one; `load` writes all its series in one `TimelessMetrics.write_batch/3`
      call (`unit: :millisecond`, staleness markers as `:stale`);
    * `eval instant at <t>` runs `TimelessMetrics.PromQL.instant/4` at `t`, then, as
      upstream does, the same query as a range query from `t - 1m` to `t + 1m`
      step `1m` (`range/6`): the matrix must be sorted by label set and its middle
      step must give the same expected result (not for `eval_ordered`);
    * `eval range from <a> to <b> step <s>` runs `range/6`;
    * `eval_fail` must return `{:error, _}` (and match `expected_fail_message` /
      `expected_fail_regexp` when given);
    * results are compared as upstream's `compareResult`: label sets exactly
      (`__name__` included), values with a relative tolerance of 1e-6
      (`almost_equal?/2`: NaN equals NaN, infinities must match exactly), order only
      for `eval_ordered`, a bare number line expects a scalar.

  Upstream also re-runs each instant case with `@ <t>` added to its selectors at
  other evaluation times; that variant needs a PromQL printer and is not run here.

  A query that `TimelessMetrics.PromQL.Parser` rejects fails its case (upstream
  would reject the whole file; per case is more useful while the parser is checked
  by these very files).

  ## Skips

  `skips/0` is the explicit list of what is not run: the whole
  `native_histograms.test` file (the store has no native histograms) and the 12
  experimental-function cases of `functions.test`, each named by file, line and
  exact query text (a list entry whose query no longer matches that line skips
  nothing, so a changed file cannot hide a case). Skipped cases are printed.

  ## Example

      {:ok, summary} = TimelessMetrics.PromQL.Conformance.run_dir("../shared/promql-conformance/testdata")
      IO.puts(TimelessMetrics.PromQL.Conformance.report(summary, verbose: true))
      # file                     passed  failed  skipped
      # aggregators.test             83       0        0
      # ...
      # 567 passed, 0 failed, 201 skipped

  Options of `run_dir/2` and `run_file/2`: `engine` (default `TimelessMetrics.PromQL`,
  any module with `instant/4` and `range/6`), `engine_opts` (default
  `[lookback_delta_ms: 300_000, timeout_ms: 100_000]`), `case_timeout_ms` (default
  120_000; a case that takes longer fails), `range_check` (default `true`).
  """


  alias TimelessMetrics.PromQL.Conformance.Script
  alias TimelessMetrics.PromQL.Parser

  @experimental "experimental function (needs --enable-feature=promql-experimental-functions upstream)"

  @skips [
    {"native_histograms.test", :all, nil, "native histograms are not stored by TimelessMetrics"},
    {"functions.test", 514, ~S|sort_by_label(http_requests, "instance")|, @experimental},
    {"functions.test", 526, ~S|sort_by_label(http_requests, "instance", "group")|, @experimental},
    {"functions.test", 538, ~S|sort_by_label(http_requests, "instance", "group")|, @experimental},
    {"functions.test", 550, ~S|sort_by_label(http_requests, "group", "instance", "job")|, @experimental},
    {"functions.test", 562, ~S|sort_by_label(http_requests, "job", "instance", "group")|, @experimental},
    {"functions.test", 574, ~S|sort_by_label_desc(http_requests, "instance")|, @experimental},
    {"functions.test", 586, ~S|sort_by_label_desc(http_requests, "instance", "group")|, @experimental},
    {"functions.test", 598, ~S|sort_by_label_desc(http_requests, "instance", "group", "job")|, @experimental},
    {"functions.test", 610, ~S|sort_by_label(cpu_time_total, "cpu")|, @experimental},
    {"functions.test", 622, ~S|sort_by_label(node_uname_info, "instance")|, @experimental},
    {"functions.test", 627, ~S|sort_by_label(node_uname_info, "release")|, @experimental},
    {"functions.test", 805, ~S|mad_over_time(metric[70s])|, @experimental}
  ]

  @default_engine_opts [lookback_delta_ms: 300_000, timeout_ms: 100_000]
  @epsilon 1.0e-6
  @min_normal 2.2250738585072014e-308
  @max_float 1.7976931348623157e308

  @typedoc "The outcome of one eval command."
  @type case_result :: %{
          file: String.t(),
          line: pos_integer(),
          query: String.t(),
          header: String.t(),
          status: :passed | :failed | :skipped,
          reason: String.t() | nil,
          expected: [String.t()],
          got: String.t() | nil
        }

  @typedoc "The outcome of one file; `error` is set when the file could not be read as a script."
  @type file_result :: %{
          file: String.t(),
          passed: non_neg_integer(),
          failed: non_neg_integer(),
          skipped: non_neg_integer(),
          error: String.t() | nil,
          cases: [case_result()]
        }

  @type summary :: %{
          dir: String.t(),
          files: [file_result()],
          passed: non_neg_integer(),
          failed: non_neg_integer(),
          skipped: non_neg_integer()
        }

  @doc """
  The skip list: `{file, line | :all, query | nil, reason}`.

      iex> {"native_histograms.test", :all, nil, _} = hd(TimelessMetrics.PromQL.Conformance.skips())
      iex> length(TimelessMetrics.PromQL.Conformance.skips())
      13
  """
  @spec skips() :: [{String.t(), pos_integer() | :all, String.t() | nil, String.t()}]
  def skips, do: @skips

  @doc """
  Whether an engine module is loaded and has `instant/4` and `range/6`.

      iex> TimelessMetrics.PromQL.Conformance.engine_available?(Enum)
      false
  """
  @spec engine_available?(module()) :: boolean()
  def engine_available?(engine \\ TimelessMetrics.PromQL) do
    Code.ensure_loaded?(engine) and function_exported?(engine, :instant, 4) and function_exported?(engine, :range, 6)
  end

  @doc """
  Run every `*.test` file of `dir` (sorted by name). `{:error, message}` when the
  directory has no test files or the engine is not available.
  """
  @spec run_dir(Path.t(), keyword()) :: {:ok, summary()} | {:error, String.t()}
  def run_dir(dir, opts \\ []) do
    engine = Keyword.get(opts, :engine, TimelessMetrics.PromQL)
    files = dir |> Path.join("*.test") |> Path.wildcard() |> Enum.sort()

    cond do
      not engine_available?(engine) ->
        {:error, "#{inspect(engine)} is not available (no instant/4 and range/6); nothing was run"}

      files == [] ->
        {:error, "no *.test files in #{dir}"}

      true ->
        results = Enum.map(files, &run_file(&1, opts))

        {:ok,
         %{
           dir: dir,
           files: results,
           passed: Enum.sum(Enum.map(results, & &1.passed)),
           failed: Enum.sum(Enum.map(results, & &1.failed)),
           skipped: Enum.sum(Enum.map(results, & &1.skipped))
         }}
    end
  end

  @doc "Run one script file on fresh memory stores; see the moduledoc for options."
  @spec run_file(Path.t(), keyword()) :: file_result()
  def run_file(path, opts \\ []) do
    name = Path.basename(path)

    skip_all = whole_file_skip(name)

    case Script.parse_file(path) do
      {:error, _} when skip_all != nil ->
        # A skipped file is still counted, even if the script parser cannot read it.
        cases = path |> File.read!() |> String.split("\n") |> Enum.count(&Regex.match?(~r/^\s*eval/i, &1))
        %{file: name, passed: 0, failed: 0, skipped: cases, error: nil, cases: []}

      {:error, %{line: line, message: message}} ->
        %{file: name, passed: 0, failed: 1, skipped: 0, error: "#{name}:#{line}: #{message}", cases: []}

      {:ok, commands} ->
        cases = run_commands(name, commands, opts)

        %{
          file: name,
          passed: Enum.count(cases, &(&1.status == :passed)),
          failed: Enum.count(cases, &(&1.status == :failed)),
          skipped: Enum.count(cases, &(&1.status == :skipped)),
          error: nil,
          cases: cases
        }
    end
  end

  @doc """
  Run parsed commands (see `TimelessMetrics.PromQL.Conformance.Script.parse/1`) as
  the file `name`. Returns one result per eval command, in order.
  """
  @spec run_commands(String.t(), [Script.command()], keyword()) :: [case_result()]
  def run_commands(name, commands, opts \\ []) do
    if whole_file_skip(name) != nil and commands != [] do
      for %{cmd: :eval} = e <- commands, do: case_result(name, e, :skipped, whole_file_skip(name), nil)
    else
      store = new_store()

      {store, _broken, results} =
        Enum.reduce(commands, {store, nil, []}, fn command, {store, broken, acc} ->
          case command do
            %{cmd: :clear} ->
              stop_store(store)
              {new_store(), nil, acc}

            %{cmd: :load} = load ->
              case load(store, load) do
                :ok -> {store, broken, acc}
                {:error, message} -> {store, "load at line #{load.line} failed: #{message}", acc}
              end

            %{cmd: :eval} = eval ->
              {store, broken, [eval_case(name, store, eval, broken, opts) | acc]}
          end
        end)

      stop_store(store)
      Enum.reverse(results)
    end
  end

  defp whole_file_skip(name) do
    Enum.find_value(@skips, fn
      {^name, :all, _, reason} -> reason
      _ -> nil
    end)
  end

  defp case_skip(name, eval) do
    Enum.find_value(@skips, fn
      {^name, line, query, reason} when line == eval.line and query == eval.query -> reason
      _ -> nil
    end)
  end

  # ------------------------------------------------------------------ stores and loading

  defp new_store do
    name = :"promql_conformance_#{System.unique_integer([:positive])}"
    {:ok, _pid} = TimelessMetrics.start_link(name: name, mode: :memory)
    name
  end

  defp stop_store(store) do
    TimelessMetrics.stop(store)
  catch
    :exit, _ -> :ok
  end

  defp load(store, %{series: series}) do
    entries =
      for {labels, samples} <- series, {ts, value} <- samples do
        {metric, rest} = Map.pop(labels, "__name__")
        {metric, rest, store_value(value), ts}
      end

    cond do
      Enum.any?(entries, &match?({_, _, {:histogram, _}, _}, &1)) ->
        {:error, "native histogram samples cannot be stored"}

      entries == [] ->
        :ok

      true ->
        case TimelessMetrics.write_batch(store, entries, unit: :millisecond) do
          :ok -> :ok
          {:error, reason} -> {:error, inspect(reason)}
        end
    end
  end

  defp store_value(:inf), do: :infinity
  defp store_value(:neg_inf), do: :neg_infinity
  defp store_value(v), do: v

  # ------------------------------------------------------------------ evaluation

  defp eval_case(name, store, eval, broken, opts) do
    cond do
      reason = case_skip(name, eval) ->
        case_result(name, eval, :skipped, reason, nil)

      broken != nil ->
        case_result(name, eval, :failed, broken, nil)

      true ->
        case Parser.parse(eval.query) do
          {:error, error} ->
            case_result(name, eval, :failed, "query does not parse: " <> Parser.format_error(eval.query, error), nil)

          {:ok, _ast} ->
            case run_eval(store, eval, opts) do
              {:ok, got} -> case_result(name, eval, :passed, nil, got)
              {:error, reason, got} -> case_result(name, eval, :failed, reason, got)
            end
        end
    end
  end

  defp case_result(name, eval, status, reason, got) do
    %{
      file: name,
      line: eval.line,
      query: eval.query,
      header: eval.header,
      status: status,
      reason: reason,
      expected: eval.lines,
      got: got
    }
  end

  defp run_eval(store, %{range: true} = eval, opts) do
    call = fn -> engine(opts).range(store, eval.query, eval.start_ms, eval.end_ms, eval.step_ms, engine_opts(opts)) end

    case timed(call, opts) do
      {:error, _} = error when eval.fail ->
        check_failure(eval, error)

      {:ok, _} = ok when eval.fail ->
        {:error, "expected an error evaluating the query but got none", render(ok)}

      {:ok, result} = ok ->
        with_got(compare(eval, normalize(result)), ok)

      other ->
        {:error, "error evaluating the query: #{describe_error(other)}", render(other)}
    end
  end

  defp run_eval(store, eval, opts) do
    t = eval.time_ms
    call = fn -> engine(opts).instant(store, eval.query, t, engine_opts(opts)) end

    case timed(call, opts) do
      {:error, _} = error when eval.fail ->
        check_failure(eval, error)

      {:ok, _} = ok when eval.fail ->
        {:error, "expected an error evaluating the query but got none", render(ok)}

      {:ok, result} = ok ->
        result = normalize(result)

        with {:ok, got} <- with_got(compare(eval, result), ok) do
          if Keyword.get(opts, :range_check, true) and not eval.ordered,
            do: range_check(store, eval, result, got, opts),
            else: {:ok, got}
        end

      other ->
        {:error, "error evaluating the query: #{describe_error(other)}", render(other)}
    end
  end

  # Upstream's "same result in range mode" check, on the middle step.
  defp range_check(store, eval, instant_result, got, opts) do
    t = eval.time_ms
    call = fn -> engine(opts).range(store, eval.query, t - 60_000, t + 60_000, 60_000, engine_opts(opts)) end

    case timed(call, opts) do
      {:ok, result} ->
        case normalize(result) do
          {:matrix, series} = matrix ->
            vector = for {labels, points} <- series, {^t, v} <- Enum.take(Enum.filter(points, &(elem(&1, 0) == t)), 1), do: {labels, v}

            outcome =
              with :ok <- assert_sorted(series) do
                case {instant_result, vector} do
                  {{:scalar, _}, [{_, v} | _]} -> compare(eval, {:scalar, v})
                  {{:scalar, _}, []} -> {:error, "no point at the evaluation time"}
                  _ -> compare(eval, {:vector, vector})
                end
              end

            case outcome do
              :ok -> {:ok, got}
              {:error, reason} -> {:error, "range mode (#{t - 60_000}..#{t + 60_000} step 60000 ms): " <> reason, render_normalized(matrix)}
            end

          other ->
            {:error, "range mode: a range query must return a matrix, got #{elem(other, 0)}", render_normalized(other)}
        end

      other ->
        {:error, "error evaluating the query in range mode: #{describe_error(other)}", render(other)}
    end
  end

  defp check_failure(eval, {:error, reason}) do
    message = error_message(reason)
    got = "error: " <> message

    cond do
      eval.fail_message != nil and eval.fail_message != message ->
        {:error, "expected error #{inspect(eval.fail_message)} evaluating the query but got #{inspect(message)}", got}

      eval.fail_regexp != nil and not Regex.match?(eval.fail_regexp, message) ->
        {:error, "expected error matching #{inspect(Regex.source(eval.fail_regexp))} but got #{inspect(message)}", got}

      true ->
        {:ok, got}
    end
  end

  defp with_got(:ok, result), do: {:ok, render(result)}
  defp with_got({:error, reason}, result), do: {:error, reason, render(result)}

  defp engine(opts), do: Keyword.get(opts, :engine, TimelessMetrics.PromQL)
  defp engine_opts(opts), do: Keyword.merge(@default_engine_opts, Keyword.get(opts, :engine_opts, []))

  # Run an engine call in a task, so that a crash or a hang fails one case only.
  defp timed(fun, opts) do
    timeout = Keyword.get(opts, :case_timeout_ms, 120_000)

    task =
      Task.async(fn ->
        try do
          {:returned, fun.()}
        rescue
          e -> {:raised, Exception.format(:error, e, __STACKTRACE__)}
        catch
          kind, value -> {:raised, Exception.format(kind, value, __STACKTRACE__)}
        end
      end)

    case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
      {:ok, {:returned, value}} -> value
      {:ok, {:raised, text}} -> {:raised, text}
      nil -> {:timeout, timeout}
      {:exit, reason} -> {:raised, inspect(reason)}
    end
  end

  defp describe_error({:error, reason}), do: error_message(reason)
  defp describe_error({:raised, text}), do: "raised " <> (text |> String.split("\n") |> Enum.take(3) |> Enum.join(" | "))
  defp describe_error({:timeout, ms}), do: "no answer within #{ms} ms"
  defp describe_error(other), do: "unexpected return value #{inspect(other, limit: 20)}"

  defp error_message({kind, message}) when is_atom(kind) and is_binary(message), do: message
  defp error_message(message) when is_binary(message), do: message
  defp error_message(other), do: inspect(other)

  # ------------------------------------------------------------------ results

  @doc """
  An engine result (`%{type: ..., result: ...}`) in the runner's form:
  `{:vector, [{labels, v}]}`, `{:matrix, [{labels, [{t, v}]}]}`, `{:scalar, v}` or
  `{:string, s}`. Labels with empty values are dropped; values are floats or
  `:nan | :inf | :neg_inf`.

      iex> TimelessMetrics.PromQL.Conformance.normalize(%{type: :vector, result: [%{metric: %{"a" => "1", "b" => ""}, value: {0, 2}}]})
      {:vector, [{%{"a" => "1"}, 2.0}]}
  """
  @spec normalize(map()) :: tuple()
  def normalize(%{type: :vector, result: samples}),
    do: {:vector, Enum.map(samples, fn %{metric: m, value: {_t, v}} -> {labels(m), value(v)} end)}

  def normalize(%{type: :matrix, result: series}),
    do: {:matrix, Enum.map(series, fn %{metric: m, values: pts} -> {labels(m), Enum.map(pts, fn {t, v} -> {t, value(v)} end)} end)}

  def normalize(%{type: :scalar, result: {_t, v}}), do: {:scalar, value(v)}
  def normalize(%{type: :string, result: {_t, s}}), do: {:string, s}
  def normalize(other), do: {:invalid, other}

  defp labels(m), do: m |> Enum.reject(fn {_, v} -> v in ["", nil] end) |> Map.new(fn {k, v} -> {to_string(k), v} end)

  defp value(v) when is_integer(v), do: v * 1.0
  defp value(:infinity), do: :inf
  defp value(:neg_infinity), do: :neg_inf
  defp value(:stale), do: :nan
  defp value(v), do: v

  @doc """
  Compare a normalized result with an eval command's expectations, as upstream's
  `compareResult`. Returns `:ok` or `{:error, reason}`.
  """
  @spec compare(Script.eval(), tuple()) :: :ok | {:error, String.t()}
  def compare(eval, {:matrix, series}) do
    expected = Map.new(eval.series, &{&1.labels, &1})

    cond do
      eval.ordered ->
        {:error, "expected ordered result, but query returned a matrix"}

      eval.scalar != nil ->
        {:error, "expected scalar #{fmt(eval.scalar)} but got a matrix"}

      true ->
        with :ok <- assert_sorted(series),
             :ok <- each(series, &compare_series(eval, expected, &1)) do
          seen = MapSet.new(series, &elem(&1, 0))

          case Enum.find(eval.series, &(not MapSet.member?(seen, &1.labels))) do
            nil -> :ok
            missing -> {:error, "expected metric #{fmt_labels(missing.labels)} not found"}
          end
        end
    end
  end

  def compare(eval, {:vector, samples}) do
    expected = Map.new(eval.series, &{&1.labels, &1})

    result =
      samples
      |> Enum.with_index(1)
      |> each(fn {{labels, v}, pos} ->
        case Map.fetch(expected, labels) do
          :error ->
            {:error, "unexpected metric #{fmt_labels(labels)} in result, has value #{fmt(v)}"}

          {:ok, exp} ->
            exp0 = List.first(exp.values, :omitted)
            exp_v = if exp0 == :omitted, do: 0.0, else: exp0

            cond do
              eval.ordered and exp.pos != pos ->
                {:error, "expected metric #{fmt_labels(labels)} with #{fmt(exp_v)} at position #{exp.pos} but was at #{pos}"}

              match?({:histogram, _}, exp_v) ->
                {:error, "expected a native histogram for #{fmt_labels(labels)} but got float value #{fmt(v)}"}

              not almost_equal?(exp_v, v) ->
                {:error, "expected #{fmt(exp_v)} for #{fmt_labels(labels)} but got #{fmt(v)}"}

              true ->
                :ok
            end
        end
      end)

    with :ok <- result do
      seen = MapSet.new(samples, &elem(&1, 0))

      cond do
        missing = Enum.find(eval.series, &(not MapSet.member?(seen, &1.labels))) ->
          {:error, "expected metric #{fmt_labels(missing.labels)} with #{Enum.map_join(missing.values, " ", &fmt/1)} not found"}

        eval.scalar != nil ->
          {:error, "expected scalar #{fmt(eval.scalar)} but got a vector"}

        true ->
          :ok
      end
    end
  end

  def compare(eval, {:scalar, v}) do
    cond do
      eval.scalar == nil or eval.series != [] ->
        {:error, "expected vector or matrix result, but got scalar #{fmt(v)}"}

      match?({:histogram, _}, eval.scalar) ->
        {:error, "expected a histogram but got scalar #{fmt(v)}"}

      not almost_equal?(eval.scalar, v) ->
        {:error, "expected scalar #{fmt(eval.scalar)} but got #{fmt(v)}"}

      true ->
        :ok
    end
  end

  def compare(_eval, {:string, s}), do: {:error, "unexpected result type string (#{inspect(s)})"}
  def compare(_eval, {:invalid, other}), do: {:error, "the engine returned an invalid result: #{inspect(other, limit: 10)}"}

  defp compare_series(eval, expected, {labels, points}) do
    case Map.fetch(expected, labels) do
      :error ->
        {:error, "unexpected metric #{fmt_labels(labels)} in result, has #{fmt_points(points)}"}

      {:ok, exp} ->
        steps = exp.values |> Enum.with_index() |> Enum.map(fn {v, i} -> {eval.start_ms + i * eval.step_ms, v} end)

        cond do
          Enum.any?(steps, fn {ts, _} -> ts > eval.end_ms end) ->
            {:error, "expected #{length(exp.values)} points for #{fmt_labels(labels)}, but query time range cannot return this many points"}

          true ->
            floats = for {ts, v} <- steps, v != :omitted, do: {ts, v}

            if length(floats) != length(points) do
              {:error, "expected #{length(floats)} float points for #{fmt_labels(labels)}, but got #{fmt_points(points)}"}
            else
              floats
              |> Enum.zip(points)
              |> Enum.with_index()
              |> each(fn {{{et, ev}, {at, av}}, i} ->
                cond do
                  et != at -> {:error, "expected float value at index #{i} for #{fmt_labels(labels)} to have timestamp #{et}, but it had timestamp #{at}"}
                  not almost_equal?(ev, av) -> {:error, "expected float value at index #{i} (t=#{at}) for #{fmt_labels(labels)} to be #{fmt(ev)}, but got #{fmt(av)}"}
                  true -> :ok
                end
              end)
            end
        end
    end
  end

  defp each(list, fun) do
    Enum.reduce_while(list, :ok, fn item, :ok ->
      case fun.(item) do
        :ok -> {:cont, :ok}
        error -> {:halt, error}
      end
    end)
  end

  defp assert_sorted(series) do
    series
    |> Enum.map(&elem(&1, 0))
    |> Enum.chunk_every(2, 1, :discard)
    |> Enum.with_index(1)
    |> each(fn {[a, b], i} ->
      if compare_labels(a, b) == :gt,
        do: {:error, "matrix results should always be sorted by labels, but matrix is not sorted: series at index #{i} with labels #{fmt_labels(b)} sorts before series at index #{i - 1} with labels #{fmt_labels(a)}"},
        else: :ok
    end)
  end

  @doc """
  Prometheus's `labels.Compare` on two label maps: sorted by name, compared pair by
  pair (name, then value), then by length.

      iex> TimelessMetrics.PromQL.Conformance.compare_labels(%{"a" => "1"}, %{"a" => "1", "b" => "0"})
      :lt
      iex> TimelessMetrics.PromQL.Conformance.compare_labels(%{"__name__" => "x", "a" => "2"}, %{"__name__" => "x", "a" => "10"})
      :gt
  """
  @spec compare_labels(map(), map()) :: :lt | :eq | :gt
  def compare_labels(a, b), do: cmp_pairs(Enum.sort(a), Enum.sort(b))

  defp cmp_pairs([], []), do: :eq
  defp cmp_pairs([], _), do: :lt
  defp cmp_pairs(_, []), do: :gt
  defp cmp_pairs([p | as], [p | bs]), do: cmp_pairs(as, bs)
  defp cmp_pairs([{n, _} | _], [{m, _} | _]) when n != m, do: if(n < m, do: :lt, else: :gt)
  defp cmp_pairs([{_, v} | _], [{_, w} | _]), do: if(v < w, do: :lt, else: :gt)

  @doc """
  Upstream's `almostEqual(a, b, 1e-6)`: equal, both NaN, or a relative difference
  below 1e-6; against 0 (or below the smallest normal float) the absolute difference
  must be below 1e-6 × 2.2e-308. Accepts floats, integers, `:nan`, `:stale`, `:inf`, `:neg_inf`.

      iex> TimelessMetrics.PromQL.Conformance.almost_equal?(1.0, 1.0000001)
      true
      iex> TimelessMetrics.PromQL.Conformance.almost_equal?(:nan, :stale)
      true
      iex> TimelessMetrics.PromQL.Conformance.almost_equal?(0.0, 1.0e-300)
      false
      iex> TimelessMetrics.PromQL.Conformance.almost_equal?(:inf, :neg_inf)
      false
  """
  @spec almost_equal?(term(), term()) :: boolean()
  def almost_equal?(a, b) do
    a = value(a)
    b = value(b)

    cond do
      a == :nan and b == :nan -> true
      a == b -> true
      not is_number(a) or not is_number(b) -> false
      true -> relative_equal?(a * 1.0, b * 1.0)
    end
  end

  defp relative_equal?(a, b) do
    abs_sum = safe(fn -> abs(a) + abs(b) end, @max_float)
    diff = safe(fn -> abs(a - b) end, :inf)

    cond do
      diff == :inf -> false
      a == 0 or b == 0 or abs_sum < @min_normal -> diff < @epsilon * @min_normal
      true -> diff / min(abs_sum, @max_float) < @epsilon
    end
  end

  defp safe(fun, on_overflow) do
    fun.()
  rescue
    ArithmeticError -> on_overflow
  end

  # ------------------------------------------------------------------ rendering

  defp render({:ok, result}), do: render_normalized(normalize(result))
  defp render({:error, reason}), do: "error: " <> error_message(reason)
  defp render(other), do: describe_error(other)

  defp render_normalized({:vector, []}), do: "(empty vector)"
  defp render_normalized({:vector, samples}), do: Enum.map_join(samples, "\n", fn {l, v} -> "#{fmt_labels(l)} #{fmt(v)}" end)
  defp render_normalized({:matrix, []}), do: "(empty matrix)"
  defp render_normalized({:matrix, series}), do: Enum.map_join(series, "\n", fn {l, pts} -> "#{fmt_labels(l)} #{fmt_points(pts)}" end)
  defp render_normalized({:scalar, v}), do: "scalar #{fmt(v)}"
  defp render_normalized({:string, s}), do: "string #{inspect(s)}"
  defp render_normalized({:invalid, other}), do: "invalid result #{inspect(other, limit: 10)}"

  defp fmt_points(points), do: Enum.map_join(points, " ", fn {t, v} -> "#{fmt(v)}@#{t}" end)

  @doc false
  def fmt(:nan), do: "NaN"
  def fmt(:stale), do: "stale"
  def fmt(:inf), do: "+Inf"
  def fmt(:neg_inf), do: "-Inf"
  def fmt(:omitted), do: "_"
  def fmt({:histogram, h}), do: "{{histogram count:#{fmt(h.count)} sum:#{fmt(h.sum)}}}"
  def fmt(v) when is_number(v), do: TimelessMetrics.HTTP.JSON.format_value(v)
  def fmt(other), do: inspect(other)

  @doc false
  def fmt_labels(labels) do
    {name, rest} = Map.pop(labels, "__name__")
    pairs = rest |> Enum.sort() |> Enum.map_join(", ", fn {k, v} -> "#{k}=#{Parser.go_quote(v)}" end)
    if name != nil and pairs == "", do: name, else: "#{name}{#{pairs}}"
  end

  @doc """
  The report of a run: the per-file table, the skipped cases, with `verbose: true`
  every failing case (file, line, query, reason, expected and got), and a last line
  `N passed, M failed, K skipped`.
  """
  @spec report(summary(), keyword()) :: String.t()
  def report(summary, opts \\ []) do
    width = summary.files |> Enum.map(&String.length(&1.file)) |> Enum.max(fn -> 4 end) |> max(4)

    table =
      [
        String.pad_trailing("file", width) <> "  passed  failed  skipped",
        for f <- summary.files do
          String.pad_trailing(f.file, width) <>
            "  " <> pad(f.passed, 6) <> "  " <> pad(f.failed, 6) <> "  " <> pad(f.skipped, 7) <> if(f.error, do: "  (#{f.error})", else: "")
        end
      ]
      |> List.flatten()

    skipped = skipped_lines(summary.files)
    failures = if Keyword.get(opts, :verbose, false), do: failure_lines(summary.files), else: []
    totals = "#{summary.passed} passed, #{summary.failed} failed" <> if(summary.skipped > 0, do: ", #{summary.skipped} skipped", else: "")

    Enum.join(failures ++ table ++ skipped ++ [totals], "\n")
  end

  defp pad(n, w), do: String.pad_leading(Integer.to_string(n), w)

  defp skipped_lines(files) do
    lines =
      Enum.flat_map(files, fn f ->
        cases = Enum.filter(f.cases, &(&1.status == :skipped))

        case whole_file_skip(f.file) do
          reason when reason != nil and f.skipped > 0 ->
            ["  #{f.file}: the whole file (#{f.skipped} cases): #{reason}"]

          _ ->
            Enum.map(cases, fn c -> "  #{c.file}:#{c.line}: #{c.query}  (#{c.reason})" end)
        end
      end)

    if lines == [], do: [], else: ["skipped (TimelessMetrics.PromQL.Conformance.skips/0):" | lines]
  end

  defp failure_lines(files) do
    Enum.flat_map(files, fn f ->
      Enum.flat_map(Enum.filter(f.cases, &(&1.status == :failed)), fn c ->
        [
          "FAIL #{c.file}:#{c.line}",
          "  query:    #{c.query}",
          "  command:  #{c.header}",
          "  reason:   #{c.reason}",
          "  expected: " <> indent(if(c.expected == [], do: "(empty result)", else: Enum.join(c.expected, "\n"))),
          "  got:      " <> indent(c.got || "(not evaluated)"),
          ""
        ]
      end)
    end)
  end

  defp indent(text), do: String.replace(text, "\n", "\n            ")
end

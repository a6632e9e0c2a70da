// Records real Debezium change events as Kafka would carry them.
//
// Runs one or more Debezium embedded engines (one per .properties file) and
// serialises every record exactly as a Kafka Connect worker does: the
// connector's SourceRecord goes through Confluent's AvroConverter
// (fromConnectData), which registers the schema with the registry at
// --registry and returns Confluent wire-format bytes (magic 0, schema id,
// Avro body). Each record becomes one JSON line:
//
//   {"topic":..,"partition":0,"offset":N,"timestamp_ms":..,"key":B64|null,"value":B64|null}
//
// Offsets count per topic from 0, as a fresh single-partition topic would.
// Transaction-metadata topics (<prefix>.transaction) are left out: floe reads
// the per-event transaction block, not the side topic.
//
// The program runs until the file named by --stop exists, then closes the
// engines and exits. Launched by scripts/record-fixtures.sh with
//   java -cp '<debezium libs>/*' Capture.java --out F --registry URL --stop F a.properties [b.properties...]

import io.confluent.connect.avro.AvroConverter;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import io.debezium.embedded.Connect;
import org.apache.kafka.connect.source.SourceRecord;

import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

public class Capture {
    private static final Map<String, Long> nextOffset = new HashMap<>();
    private static Writer out;

    public static void main(String[] args) throws Exception {
        String outPath = null, registry = null, stop = null;
        List<String> engines = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--out": outPath = args[++i]; break;
                case "--registry": registry = args[++i]; break;
                case "--stop": stop = args[++i]; break;
                default: engines.add(args[i]);
            }
        }
        if (outPath == null || registry == null || stop == null || engines.isEmpty()) {
            System.err.println("usage: Capture --out F --registry URL --stop F engine.properties...");
            System.exit(2);
        }
        out = new OutputStreamWriter(new FileOutputStream(outPath), StandardCharsets.UTF_8);

        ExecutorService pool = Executors.newCachedThreadPool();
        List<DebeziumEngine<?>> running = new ArrayList<>();
        for (String file : engines) {
            Properties props = new Properties();
            try (FileInputStream in = new FileInputStream(file)) {
                props.load(in);
            }
            AvroConverter keyConverter = new AvroConverter();
            keyConverter.configure(Map.of("schema.registry.url", registry), true);
            AvroConverter valueConverter = new AvroConverter();
            valueConverter.configure(Map.of("schema.registry.url", registry), false);

            DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine
                    .create(ChangeEventFormat.of(Connect.class))
                    .using(props)
                    .notifying(event -> record(event.record(), keyConverter, valueConverter))
                    .using((success, message, error) -> {
                        if (!success) {
                            System.err.println("engine " + file + " stopped: " + message);
                            if (error != null) error.printStackTrace();
                        }
                    })
                    .build();
            running.add(engine);
            pool.execute(engine);
        }
        System.err.println("capture: " + running.size() + " engine(s) running");
        Path stopFile = Path.of(stop);
        while (!Files.exists(stopFile)) {
            Thread.sleep(200);
        }
        for (DebeziumEngine<?> engine : running) {
            engine.close();
        }
        pool.shutdown();
        pool.awaitTermination(30, TimeUnit.SECONDS);
        synchronized (Capture.class) {
            out.flush();
            out.close();
        }
        System.err.println("capture: stopped");
        System.exit(0);
    }

    private static void record(SourceRecord rec, AvroConverter keyConverter, AvroConverter valueConverter) {
        String topic = rec.topic();
        if (topic.endsWith(".transaction")) {
            return;
        }
        byte[] key = keyConverter.fromConnectData(topic, rec.keySchema(), rec.key());
        byte[] value = valueConverter.fromConnectData(topic, rec.valueSchema(), rec.value());
        synchronized (Capture.class) {
            long offset = nextOffset.merge(topic, 1L, Long::sum) - 1;
            try {
                out.write("{\"topic\":\"" + topic + "\",\"partition\":0,\"offset\":" + offset
                        + ",\"timestamp_ms\":" + (rec.timestamp() == null ? "null" : rec.timestamp())
                        + ",\"key\":" + b64(key) + ",\"value\":" + b64(value) + "}\n");
                out.flush();
            } catch (java.io.IOException e) {
                throw new RuntimeException("cannot write the recording", e);
            }
        }
    }

    private static String b64(byte[] bytes) {
        return bytes == null ? "null" : "\"" + Base64.getEncoder().encodeToString(bytes) + "\"";
    }
}

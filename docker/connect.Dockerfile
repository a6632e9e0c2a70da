# Kafka Connect with Debezium's Postgres connector (the Debezium image) and
# the Confluent AvroConverter, which Debezium's images no longer bundle.
FROM quay.io/debezium/connect:3.0.7.Final
ARG CONFLUENT=7.7.1
ARG MAVEN=https://packages.confluent.io/maven/io/confluent
ARG CENTRAL=https://repo1.maven.org/maven2
RUN set -e; dir=/kafka/connect/confluent-avro; mkdir -p "$dir"; cd "$dir"; \
    for a in kafka-connect-avro-converter kafka-connect-avro-data kafka-avro-serializer \
             kafka-schema-serializer kafka-schema-converter kafka-schema-registry-client \
             common-config common-utils; do \
      curl -fsSLO "$MAVEN/$a/$CONFLUENT/$a-$CONFLUENT.jar"; \
    done; \
    curl -fsSLO "$CENTRAL/org/apache/avro/avro/1.11.4/avro-1.11.4.jar"; \
    curl -fsSLO "$CENTRAL/com/google/guava/guava/32.0.1-jre/guava-32.0.1-jre.jar"; \
    curl -fsSLO "$CENTRAL/com/google/guava/failureaccess/1.0.1/failureaccess-1.0.1.jar"

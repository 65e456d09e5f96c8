#!/usr/bin/python3
"""A claimant written with pika alone, following the README's wire contract: heartbeat, take one broadcast, claim it, print the answer."""
import json
import os
import sys
import uuid

import pika

app = sys.argv[1]
user = os.environ.get("RABBITMQ_USER", "guest")
params = pika.ConnectionParameters(
    host=os.environ.get("RABBITMQ_HOST", "localhost"),
    port=int(os.environ.get("RABBITMQ_PORT", "5672")),
    virtual_host=os.environ.get("RABBITMQ_VHOST", "/"),
    credentials=pika.PlainCredentials(user, os.environ.get("RABBITMQ_PASSWORD", "guest")),
)
connection = pika.BlockingConnection(params)
channel = connection.channel()
# The exchanges are provisioned by the router's side; an app only checks they exist (it has no right to declare them).
for exchange in ("call.broadcasts", "call.claims", "app.heartbeats"):
    channel.exchange_declare(exchange, passive=True)
queue = f"app.{app}"
channel.queue_declare(queue, durable=True)
channel.queue_bind(queue, "call.broadcasts", routing_key=app)

def heartbeat():
    channel.basic_publish("app.heartbeats", "", json.dumps({"app": app}), pika.BasicProperties(content_type="application/json", user_id=user))

heartbeat()
connection.call_later(1, lambda: None)
print("ready", flush=True)

for method, properties, body in channel.consume(queue, inactivity_timeout=1):
    if method is None:
        heartbeat()
        continue
    channel.basic_ack(method.delivery_tag)
    if properties.type != "CallBroadcast":
        continue
    broadcast = json.loads(body)
    correlation_id = str(uuid.uuid4())
    # Direct reply-to: no reply queue to declare; the answer comes back on this channel.
    answers = []
    channel.basic_consume("amq.rabbitmq.reply-to", lambda ch, m, p, b: answers.append((p, b)), auto_ack=True)
    claim = {"callId": broadcast["callId"], "app": app, "target": {"context": "python", "extension": "s", "priority": 1}}
    channel.basic_publish("call.claims", "", json.dumps(claim),
                          pika.BasicProperties(content_type="application/json", reply_to="amq.rabbitmq.reply-to", correlation_id=correlation_id,
                                              user_id=user))
    while not answers:
        connection.process_data_events(time_limit=1)
    properties, body = answers[0]
    assert properties.correlation_id == correlation_id, properties.correlation_id
    print(body.decode(), flush=True)
    break

channel.basic_publish("app.heartbeats", "", json.dumps({"app": app, "status": "stopping"}),
                      pika.BasicProperties(content_type="application/json", user_id=user))
connection.close()
